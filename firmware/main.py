# The satellite's entry point: MicroPython runs /main.py after boot.
# sat.main() never returns on a board (a reset restarts the chip).  With
# simulated hardware it returns "reset" for a reset: the firmware exits with
# code 75 and the WASI runner starts it again in a fresh interpreter, as a
# real reset would (reloading the modules in one interpreter crashed
# MicroPython's WASI build after a firmware update: a memory fault).
import sys

import sat

if sat.main() == "reset":
    sys.exit(75)  # moat_log.firmware.wasi_runner.RESET_EXIT_CODE
