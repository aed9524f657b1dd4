# The satellite's entry point: MicroPython runs /main.py after boot.
# sat.main() never returns on a board (a reset restarts the chip).  With
# simulated hardware it returns "reset" for a reset: the firmware modules are
# then loaded from flash again and started afresh, as a real reset would.
import sys

while True:
    import sat

    if sat.main() != "reset":
        break
    for name in ("sat", "satproto", "parts", "hw"):
        sys.modules.pop(name, None)
