"""The satellite app: config, boot counter, the protocol end, the parts and the loop.

Theory of operation (docs/satellite-protocol.md sections 3.4, 3.5, 4, 5):

* At start the app reads ``sat.json`` from flash (a missing or bad file gives
  the defaults and a LOG message: never a crash loop), counts the boot in
  the flash file ``boot`` (a random start value the first time, a random
  number where flash cannot be written), builds the parts and one
  ``satproto.SatelliteEnd``.
* ``App.step(now_ms)`` is one turn of the loop: read what the serial line
  has, feed it to the end, carry out the commands it returns, tick the parts
  into reports, write what the end wants to send, feed the watchdog.  It
  returns how long the loop may wait for the line before the next turn.
* ``App.run()`` is the plain loop (every port has ``select.poll``; the WASI
  build has no asyncio package); ``run_async(app)`` is the same step as an
  asyncio task where ``asyncio`` exists.

A command that fails is REFUSED with the reason; nothing a host sends can
stop the loop.  ``reset`` answers first, then restarts.
"""

import json
import sys

import hw
import parts
import satproto

FIRMWARE = "moat-sat 0.1"
CONFIG_FILE = "sat.json"
BOOT_FILE = "boot"

# the settings sat.json may have besides "parts" (docs/satellite-protocol.md section 5)
DEFAULTS = {
    "id": "sat",
    "ring": 64,
    "keepalive_ms": 1000,
    "tick_ms": 10,  # how often inputs are polled
    "watchdog_ms": 0,  # 0: no hardware watchdog
    "hardware": "machine",  # or "sim" (hw.SimHardware)
    "uart": None,  # {"id": 1, "baudrate": 115200, ...}: the line on a UART, not the console
}

INFO, WARNING, ERROR = 20, 30, 40


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _nonnegative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_CHECKS = {
    "id": (lambda v: isinstance(v, str) and 0 < len(v) <= 64, "1 to 64 characters"),
    "ring": (_positive_int, "an int > 0"),
    "keepalive_ms": (lambda v: _positive_int(v) and v >= 50, "an int >= 50"),
    "tick_ms": (_positive_int, "an int > 0"),
    "watchdog_ms": (_nonnegative_int, "an int >= 0"),
    "hardware": (lambda v: v in ("machine", "sim"), "machine or sim"),
    "uart": (lambda v: v is None or isinstance(v, dict), "a map or null"),
}


def check_settings(config):
    """(config, [problems]) from a sat.json map; a bad value falls back to its default."""
    problems = []
    result = dict(DEFAULTS)
    result["parts"] = {}
    if not isinstance(config, dict):
        return result, ["sat.json is not a map: defaults"]
    for key in config:
        if key not in _CHECKS and key != "parts":
            problems.append(f"sat.json: unknown key '{key}' ignored")
    for key, (check, what) in _CHECKS.items():
        if key in config:
            if check(config[key]):
                result[key] = config[key]
            else:
                problems.append(f"sat.json: {key} {config[key]!r} is not {what}: {result[key]!r}")
    try:
        parts.check_config(config.get("parts", {}))
        result["parts"] = config.get("parts", {})
    except parts.Refusal as refused:
        problems.append(f"sat.json: {refused}: no parts")
    return result, problems


def load_config(flash):
    """(config, [problems]) from flash's sat.json."""
    try:
        text = flash.read(CONFIG_FILE)
    except OSError:
        config, problems = check_settings({})
        return config, [f"no {CONFIG_FILE}: defaults"] + problems
    try:
        raw = json.loads(text)
    except ValueError as error:
        config, problems = check_settings({})
        return config, [f"{CONFIG_FILE} is not JSON ({error}): defaults"] + problems
    return check_settings(raw)


def next_boot(flash, random_u32):
    """(boot, problem or None): the flash counter + 1; random at first and where it cannot count.

    Random at first, not 1: a satellite whose flash was wiped must not reuse
    a boot number the host already has reports of.
    """
    try:
        boot = (int(flash.read(BOOT_FILE)) + 1) & 0xFFFFFFFF
    except OSError:
        boot = random_u32()
    except ValueError:
        boot = random_u32()
    try:
        flash.write(BOOT_FILE, str(boot).encode())
    except OSError as error:
        return random_u32(), f"boot counter not written ({error}): a random boot"
    return boot, None


def _file_name(name):
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise parts.Refusal(f"bad file name {name!r}")
    return name


def _int_arg(verb, what, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise parts.Refusal(f"{verb}: {what} {value!r} is not an int >= 0")
    return value


def _arguments(verb, args, names):
    if len(args) != len(names):
        shown = ", ".join(names) if names else "nothing"
        raise parts.Refusal(f"'{verb}' takes {shown}")
    return args


class App:
    """One satellite: its config, its parts and its protocol end, driven by ``step``."""

    def __init__(self, hardware, config, problems=(), serial=None):
        self.hw = hardware
        self.config = config
        now = hardware.now_ms()
        self.boot, problem = next_boot(hardware.flash, hardware.random_u32)
        problems = list(problems) + ([problem] if problem else [])
        try:
            self.parts = parts.Parts(config["parts"], hardware, now)
        except Exception as error:  # a pin the board does not have: run without parts
            problems.append(f"parts not built: {error}")
            self.parts = parts.Parts({}, hardware, now)
        self.end = satproto.SatelliteEnd(
            config["id"],
            FIRMWARE,
            self.boot,
            self.parts.kinds(),
            ring=config["ring"],
            keepalive_ms=config["keepalive_ms"],
        )
        # said whenever the line comes up: a LOG sent before a host listens is lost
        self.problems = problems
        self._line_was_up = False
        self.serial = serial or hardware.serial(config)
        self.tick_ms = config["tick_ms"]
        self._after = []
        self._reset = False
        self._verbs = {
            "w": self._write,
            "r": self._read,
            "cfg": self._cfg,
            "put": self._put,
            "commit": self._commit,
            "reset": self._reset_verb,
        }
        if config["watchdog_ms"]:
            hardware.watchdog_start(config["watchdog_ms"])

    # the loop

    def step(self, now):
        """One turn; returns the ms the loop may wait for the line."""
        self.hw.service()
        data = self.serial.read()
        if data:
            for cseq, verb, args in self.end.receive(data, now):
                self.carry_out(cseq, verb, args, now)
        if self.end.line_up and not self._line_was_up:
            for text in self.problems:
                self.end.log(WARNING, text)
        self._line_was_up = self.end.line_up
        try:
            for name, value in self.parts.tick(now):
                self.end.report(name, value, now)
        except Exception as error:  # a broken pin must not stop the line
            self.end.log(ERROR, f"parts: {error!r}")
        out = self.end.poll(now)
        if out:
            self.serial.write(out)
        self.hw.watchdog_feed()
        if self._reset:
            self.hw.reset()
        return self.timeout(now)

    def timeout(self, now):
        wait = min(self.end.next_deadline(now), self.tick_ms)
        due = self.parts.next_deadline(now)
        if due is not None and due < wait:
            wait = due
        return max(0, wait)

    def run(self):
        """The plain loop; returns when the line's input ends (only a simulation's does)."""
        while not getattr(self.serial, "closed", False):
            wait = self.step(self.hw.now_ms())
            self.serial.wait(wait)

    # commands

    def carry_out(self, cseq, verb, args, now):
        """Carry out one command and queue its DONE or REFUSED."""
        handler = self._verbs.get(verb) if isinstance(verb, str) else None
        if handler is None:
            self.end.refuse(cseq, f"unknown verb {verb!r}")
            return
        try:
            result = handler(args, now)
        except parts.Refusal as refused:
            self.end.refuse(cseq, str(refused))
            return
        except Exception as error:  # a bug or a flash error: say so, keep running
            self.end.refuse(cseq, f"{verb}: {error!r}")
            return
        self.end.done(cseq, result)
        after, self._after = self._after, []
        for action in after:
            action()

    def _write(self, args, now):
        name, value = _arguments("w", args, ("part", "value"))
        self.parts.write(name, value, now)

    def _read(self, args, now):
        (name,) = _arguments("r", args, ("part",))
        return self.parts.read(name)

    def _cfg(self, args, now):
        """Merge the map over the config; the parts change at once, other keys at the next start."""
        (update,) = _arguments("cfg", args, ("config",))
        if not isinstance(update, dict):
            raise parts.Refusal("cfg: config is not a map")
        merged = dict(self.config)
        merged.update(update)
        try:
            parts.check_config(merged["parts"])
        except parts.Refusal as refused:
            raise parts.Refusal(f"cfg: {refused}") from None
        checked, problems = check_settings(merged)
        if problems:
            raise parts.Refusal("cfg: " + "; ".join(p.replace("sat.json: ", "") for p in problems))
        if checked == self.config:
            return None  # the same: flash is not written
        parts_changed = checked["parts"] != self.config["parts"]
        self.hw.flash.write(CONFIG_FILE, json.dumps(_saved(checked)).encode())
        later = [k for k in checked if k != "parts" and checked[k] != self.config[k]]
        self.config = checked
        if later:
            later = ", ".join(sorted(later))
            self.end.log(INFO, f"cfg: {later} take effect at the next start")
        if parts_changed:  # after the DONE: "a new HELLO follows"
            self._after.append(lambda: self._rebuild(now))
        return None

    def _rebuild(self, now):
        self.parts.close()
        try:
            self.parts = parts.Parts(self.config["parts"], self.hw, now)
        except Exception as error:
            self.end.log(ERROR, f"parts not built: {error}")
            self.parts = parts.Parts({}, self.hw, now)
        self.end.set_parts(self.parts.kinds())

    def _put(self, args, now):
        name, offset, data = _arguments("put", args, ("name", "offset", "data"))
        name = _file_name(name)
        offset = _int_arg("put", "offset", offset)
        if not isinstance(data, (bytes, bytearray)):
            raise parts.Refusal("put: data is not bin")
        try:
            self.hw.flash.write_at(name + ".new", offset, data)
        except ValueError as error:
            raise parts.Refusal(str(error)) from None

    def _commit(self, args, now):
        name, size, crc = _arguments("commit", args, ("name", "size", "crc"))
        name = _file_name(name)
        size = _int_arg("commit", "size", size)
        crc = _int_arg("commit", "crc", crc)
        flash = self.hw.flash
        if not flash.exists(name + ".new"):
            raise parts.Refusal(f"file '{name}': nothing put")
        have = flash.size(name + ".new")
        if have != size:
            raise parts.Refusal(f"file '{name}': {have} bytes != {size}")
        actual = 0
        for chunk in flash.chunks(name + ".new"):
            actual = satproto.crc16(chunk, actual)
        if actual != crc:
            raise parts.Refusal(f"file '{name}': crc 0x{actual:04x} != 0x{crc:04x}")
        flash.rename(name + ".new", name)

    def _reset_verb(self, args, now):
        _arguments("reset", args, ())
        self._reset = True  # after this turn's output: the DONE goes out first


def _saved(config):
    """What sat.json gets: the settings that differ from the defaults, and the parts."""
    saved = {"id": config["id"], "parts": config["parts"]}
    for key, default in DEFAULTS.items():
        if config[key] != default:
            saved[key] = config[key]
    return saved


async def run_async(app, sleep=None):
    """The loop as an asyncio task (MicroPython's asyncio or CPython's).

    It sleeps instead of blocking in poll, so other tasks run; a byte that
    arrives waits at most ``tick_ms`` for the next turn.
    """
    if sleep is None:
        import asyncio

        async def sleep(ms):
            await asyncio.sleep(ms / 1000)

    while not getattr(app.serial, "closed", False):
        wait = app.step(app.hw.now_ms())
        await sleep(min(wait, app.tick_ms))


def start(root=None):
    """Build the App from flash (choosing the hardware from the config)."""
    flash = hw.Flash(hw.flash_root() if root is None else root)
    config, problems = load_config(flash)
    hardware = hw.select_hardware(config, flash.root)
    return App(hardware, config, problems)


def main():
    """Run the satellite.  Returns "reset" after a simulated reset, "closed" when input ended."""
    app = start()
    try:
        app.run()
    except hw.ResetRequested:
        return "reset"
    except KeyboardInterrupt:
        raise
    except Exception as error:  # the last resort: say what happened, then start again
        _print_exception(error)
        try:
            app.hw.reset()
        except hw.ResetRequested:
            pass
        return "reset"
    return "closed"


def _print_exception(error):
    """The traceback on the console (the host logs it as console text)."""
    if hasattr(sys, "print_exception"):
        sys.print_exception(error)
    else:  # CPython
        import traceback

        traceback.print_exception(error)
