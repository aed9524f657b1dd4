"""The satellite's hardware behind one small interface.

The parts (parts.py) and the app (sat.py) never touch ``machine`` or the
console themselves: they ask a *hardware* object for pins, a clock, a
watchdog, the flash and the serial line.  Two implementations:

* ``MachineHardware``: a real board (``machine.Pin``/``ADC``/``PWM``/``WDT``,
  pin interrupts for counters);
* ``SimHardware``: pins simulated over the WASI runner's sim channel,
  ``host.call("sim", json_line)``.  Firmware -> test: ``{"pin": 5, "out": 1}``,
  ``{"pin": 6, "duty": 0.25}``; test -> firmware: ``{"pin": 4, "in": 1}``,
  ``{"pin": 7, "adc": 1234}``, ``{"pin": 8, "pulses": 3}`` (pulses are counted
  edges: the test says how many the pin saw, the counter adds them).  The
  channel is a socket, never stdout: stdout is the serial line.

Flat MicroPython module: no typing, no dataclasses; it also runs on CPython
(tests import it with firmware/ on sys.path).
"""

import json
import os
import sys
import time

try:
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
except AttributeError:  # CPython: a monotonic clock that does not wrap

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(new, old):
        return new - old


def _clock_noise():
    """32 bits from the clocks, where os.urandom fails: differs from start to start."""
    now = time.time_ns() if hasattr(time, "time_ns") else int(time.time() * 1e9)
    ticks = time.ticks_us() if hasattr(time, "ticks_us") else 0
    return (now ^ (now >> 32) ^ (ticks * 2654435761)) & 0xFFFFFFFF


class ResetRequested(Exception):
    """SimHardware.reset(): the app ends and main.py starts it again from flash."""


class Clock:
    """Milliseconds since start that never wrap (time.ticks_ms wraps every ~12 days).

    ``now()`` must be called at least once per half wrap period; the app's loop
    calls it many times a second.
    """

    def __init__(self, ticks=None, diff=None):
        self._ticks = ticks or _ticks_ms
        self._diff = diff or _ticks_diff
        self._last = self._ticks()
        self._now = 0

    def now(self):
        raw = self._ticks()
        step = self._diff(raw, self._last)
        if step > 0:  # a clock that went back (cannot happen) would only stall
            self._now += step
            self._last = raw
        return self._now


class Flash:
    """Files on the satellite's flash, named relative to its root folder."""

    def __init__(self, root):
        self.root = root.rstrip("/")

    def path(self, name):
        return self.root + "/" + name

    def exists(self, name):
        try:
            os.stat(self.path(name))
        except OSError:
            return False
        return True

    def size(self, name):
        return os.stat(self.path(name))[6]

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def write(self, name, data):
        """Replace *name* atomically: write name.tmp, then rename it."""
        with open(self.path(name + ".tmp"), "wb") as f:
            f.write(data)
        self.rename(name + ".tmp", name)

    def write_at(self, name, offset, data):
        """Write *data* at *offset* (0 truncates); offset must not be past the end."""
        if offset == 0:
            mode = "wb"
        else:
            size = self.size(name)
            if offset > size:
                raise ValueError(f"file '{name}' has {size} bytes, cannot write at {offset}")
            mode = "r+b"
        with open(self.path(name), mode) as f:
            if offset:
                f.seek(offset)
            f.write(data)

    def chunks(self, name, size=256):
        with open(self.path(name), "rb") as f:
            while True:
                data = f.read(size)
                if not data:
                    return
                yield data

    def rename(self, old, new):
        try:
            os.rename(self.path(old), self.path(new))
        except OSError:  # FAT will not rename onto an existing file
            self.remove(new)
            os.rename(self.path(old), self.path(new))

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass


def flash_root():
    """The folder this firmware runs from: "/flash" under WASI, "" (i.e. "/") on most boards."""
    here = globals().get("__file__", "")
    return here.rpartition("/")[0]


class StdioSerial:
    """The serial line on the console's stdin/stdout (USB CDC or the WASI runner's pipes).

    Reads never block: ``wait`` polls with a timeout, ``read`` takes what is
    there, one byte at a time (a longer read would wait for more).
    """

    def __init__(self, stdin=None, stdout=None):
        import select

        self.closed = False  # the input ended (a simulation's test went away)
        self._in = stdin or sys.stdin.buffer
        self._out = stdout or sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(stdin or sys.stdin, select.POLLIN)
        try:  # a frame's 0x03 byte must not raise KeyboardInterrupt
            import micropython

            micropython.kbd_intr(-1)
        except (ImportError, AttributeError):
            pass

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, int(timeout_ms))))

    def read(self, limit=512):
        data = b""
        while len(data) < limit and self._poll.poll(0):
            byte = self._in.read(1)
            if not byte:  # end of input: the line is gone
                self.closed = True
                break
            data += byte
        return data

    def write(self, data):
        self._out.write(data)  # unbuffered in MicroPython (flush on WASI's stdout: EBADF)


class UartSerial:
    """The serial line on a board's UART (``"uart": {"id": 1, "baudrate": 115200, ...}``)."""

    def __init__(self, config):
        import select

        import machine

        options = dict(config)
        uart_id = options.pop("id", 1)
        self._uart = machine.UART(uart_id, **options)
        self._poll = select.poll()
        self._poll.register(self._uart, select.POLLIN)

    def wait(self, timeout_ms):
        return bool(self._poll.poll(max(0, int(timeout_ms))))

    def read(self, limit=512):
        data = self._uart.read(min(limit, self._uart.any()))
        return data or b""

    def write(self, data):
        self._uart.write(data)


class Hardware:
    """What parts and the app need; subclasses give the pins."""

    name = "none"

    def __init__(self, root=None, clock=None):
        self.flash = Flash(flash_root() if root is None else root)
        self.clock = clock or Clock()

    def now_ms(self):
        return self.clock.now()

    def service(self):
        """Called once per loop turn before the parts tick (the sim reads its channel)."""

    def random_u32(self):
        try:
            data = os.urandom(4)
        except (OSError, AttributeError):  # the WASI build has no entropy source
            return _clock_noise()
        return data[0] << 24 | data[1] << 16 | data[2] << 8 | data[3]

    def serial(self, config):
        if config.get("uart"):
            return UartSerial(config["uart"])
        return StdioSerial()

    def watchdog_start(self, timeout_ms):
        pass

    def watchdog_feed(self):
        pass


class _MachineCounter:
    """Counts edges in a pin interrupt (no allocation in the handler)."""

    def __init__(self, pin, trigger):
        self._pin = pin
        self.n = 0
        pin.irq(handler=self._edge, trigger=trigger)

    def _edge(self, pin):
        self.n += 1

    def count(self):
        return self.n

    def close(self):
        self._pin.irq(handler=None)


class _MachinePwm:
    def __init__(self, pwm):
        self._pwm = pwm

    def duty(self, duty):
        self._pwm.duty_u16(int(duty * 65535 + 0.5))

    def close(self):
        self._pwm.deinit()


class _MachineOutput:
    def __init__(self, pin):
        self._pin = pin

    def value(self, value):
        self._pin.value(value)

    def close(self):
        pass


class _MachineInput:
    def __init__(self, pin):
        self.value = pin.value

    def close(self):
        pass


class _MachineAdc:
    def __init__(self, adc):
        self.read_u16 = adc.read_u16

    def close(self):
        pass


class MachineHardware(Hardware):
    """A real board through ``machine``."""

    name = "machine"

    def __init__(self, root=None, clock=None):
        import machine

        Hardware.__init__(self, root, clock)
        self._machine = machine
        self._wdt = None

    def _pull(self, pull):
        Pin = self._machine.Pin
        return {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN}.get(pull)

    def input(self, pin, pull=None):
        Pin = self._machine.Pin
        return _MachineInput(Pin(pin, Pin.IN, self._pull(pull)))

    def output(self, pin):
        Pin = self._machine.Pin
        return _MachineOutput(Pin(pin, Pin.OUT))

    def adc(self, pin):
        return _MachineAdc(self._machine.ADC(self._machine.Pin(pin)))

    def pwm(self, pin, freq):
        return _MachinePwm(self._machine.PWM(self._machine.Pin(pin), freq=freq))

    def counter(self, pin, edge, pull=None):
        Pin = self._machine.Pin
        trigger = {"rising": Pin.IRQ_RISING, "falling": Pin.IRQ_FALLING}.get(
            edge, Pin.IRQ_RISING | Pin.IRQ_FALLING
        )
        return _MachineCounter(Pin(pin, Pin.IN, self._pull(pull)), trigger)

    def watchdog_start(self, timeout_ms):
        self._wdt = self._machine.WDT(timeout=timeout_ms)

    def watchdog_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        time.sleep_ms(50)  # let the UART send the DONE
        self._machine.reset()


class _SimPin:
    """One simulated pin; the SimHardware keeps the values the test set."""

    def __init__(self, sim, pin, default=0):
        self._sim = sim
        self.pin = pin
        self._default = default

    def value(self, value=None):
        if value is None:
            return self._sim.inputs.get(self.pin, self._default)
        self._sim.send({"pin": self.pin, "out": 1 if value else 0})
        return None

    def read_u16(self):
        return self._sim.adcs.get(self.pin, 0)

    def count(self):
        return self._sim.pulses.get(self.pin, 0) - self._base

    def duty(self, duty):
        self._sim.send({"pin": self.pin, "duty": duty})

    def close(self):
        pass


class SimHardware(Hardware):
    """Pins over a line channel to a test (``host.call("sim", line)`` under WASI).

    *channel(line)* sends *line* when it is not empty and returns the lines
    received since, joined by newlines.  A line that is not a JSON object
    with a ``pin`` is ignored (the sim must never stop the firmware).
    """

    name = "sim"

    def __init__(self, root=None, clock=None, channel=None):
        Hardware.__init__(self, root, clock)
        # Under the WASI runner a reset is the runner's: it stops the interpreter at once and
        # starts a fresh one, as a board's reset does (no unwinding, no exit path).
        self._host_reset = None
        if channel is None:
            import host

            def channel(line):
                return host.call("sim", line)

            def host_reset():
                host.call("reset", "")

            self._host_reset = host_reset

        self._channel = channel
        self.inputs = {}
        self.adcs = {}
        self.pulses = {}
        self.watchdog_fed = 0

    def send(self, message):
        self._receive(self._channel(json.dumps(message)))

    def service(self):
        self._receive(self._channel(""))

    def _receive(self, text):
        for line in text.split("\n"):
            if line:
                self._apply(line)

    def _apply(self, line):
        try:
            message = json.loads(line)
            pin = message["pin"]
        except (ValueError, KeyError, TypeError):
            return
        if "in" in message:
            self.inputs[pin] = 1 if message["in"] else 0
        if "adc" in message:
            self.adcs[pin] = int(message["adc"])
        if "pulses" in message:
            self.pulses[pin] = self.pulses.get(pin, 0) + int(message["pulses"])

    def input(self, pin, pull=None):
        return _SimPin(self, pin, 1 if pull == "up" else 0)

    def output(self, pin):
        return _SimPin(self, pin)

    def adc(self, pin):
        return _SimPin(self, pin)

    def pwm(self, pin, freq):
        return _SimPin(self, pin)

    def counter(self, pin, edge, pull=None):
        counter = _SimPin(self, pin)
        counter._base = self.pulses.get(pin, 0)  # counts from its creation, as an irq would
        return counter

    def watchdog_feed(self):
        self.watchdog_fed += 1

    def reset(self):
        if self._host_reset is not None:
            self._host_reset()  # does not return under the WASI runner
        raise ResetRequested()


def select_hardware(config, root=None):
    """SimHardware when the config says ``"hardware": "sim"`` or flash holds a file ``sim``."""
    flash = Flash(flash_root() if root is None else root)
    if config.get("hardware") == "sim" or flash.exists("sim"):
        return SimHardware(root=flash.root)
    return MachineHardware(root=flash.root)
