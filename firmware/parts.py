"""The satellite's parts: inputs, outputs, ADCs, PWM outputs and counters.

docs/satellite-protocol.md section 4 says what each kind reports and takes.
A part is built from its config block and the hardware (hw.py); the app
calls ``Parts.tick(now_ms)`` every loop turn and gets the reports to send.
Time is the app's non-wrapping millisecond count, passed in: the parts never
read a clock, so tests drive them with an explicit one.

A config is checked completely before anything is built, so a bad ``cfg``
changes nothing.  Errors are ``Refusal``: its text is the reason the
satellite sends back (``no part 'lamp'``, ``part 'door' is an input``).
"""

KINDS = ("input", "output", "adc", "pwm", "counter")


class Refusal(Exception):
    """A command or config that cannot be carried out; str() is the reason."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return _is_int(value) or isinstance(value, float)


def _choice(name, key, choices):
    def check(value):
        if value not in choices:
            shown = ", ".join("none" if c is None else c for c in choices)
            raise Refusal(f"part '{name}': {key} {value!r} not one of {shown}")

    return check


def _typed(name, key, test, what):
    def check(value):
        if not test(value):
            raise Refusal(f"part '{name}': {key} {value!r} is not {what}")

    return check


def _ms(value):
    return _is_int(value) and value >= 0


def _bool(value):
    return isinstance(value, bool)


def _pin(value):
    return _is_int(value) or (isinstance(value, str) and value != "")


def _duty(value):
    return _is_number(value) and 0 <= value <= 1


def _freq(value):
    return _is_int(value) and value > 0


# kind -> {key: (default, checker factory)}; "pin" has no default.
_KEYS = {
    "input": {
        "pull": (None, lambda n: _choice(n, "pull", ("up", "down", None))),
        "invert": (False, lambda n: _typed(n, "invert", _bool, "true or false")),
        "debounce_ms": (20, lambda n: _typed(n, "debounce_ms", _ms, "an int >= 0")),
    },
    "output": {
        "invert": (False, lambda n: _typed(n, "invert", _bool, "true or false")),
        "init": (False, lambda n: _typed(n, "init", _bool, "true or false")),
        "min_on_ms": (0, lambda n: _typed(n, "min_on_ms", _ms, "an int >= 0")),
        "min_off_ms": (0, lambda n: _typed(n, "min_off_ms", _ms, "an int >= 0")),
    },
    "adc": {
        "interval_ms": (1000, lambda n: _typed(n, "interval_ms", _ms, "an int >= 0")),
        "threshold": (0, lambda n: _typed(n, "threshold", _is_number, "a number")),
        "scale": (1, lambda n: _typed(n, "scale", _is_number, "a number")),
        "offset": (0, lambda n: _typed(n, "offset", _is_number, "a number")),
    },
    "pwm": {
        "freq": (1000, lambda n: _typed(n, "freq", _freq, "an int > 0")),
        "init": (0, lambda n: _typed(n, "init", _duty, "a duty 0..1")),
    },
    "counter": {
        "edge": ("rising", lambda n: _choice(n, "edge", ("rising", "falling", "both"))),
        "pull": (None, lambda n: _choice(n, "pull", ("up", "down", None))),
        "interval_ms": (1000, lambda n: _typed(n, "interval_ms", _ms, "an int >= 0")),
    },
}


def settings(name, block):
    """The checked settings of one part's config block, defaults filled in."""
    if not isinstance(name, str) or not name:
        raise Refusal(f"part name {name!r} is not a non-empty string")
    if not isinstance(block, dict):
        raise Refusal(f"part '{name}': config is not a map")
    kind = block.get("kind")
    if kind not in KINDS:
        raise Refusal("part '{}': kind {!r} not one of {}".format(name, kind, ", ".join(KINDS)))
    if "pin" not in block:
        raise Refusal(f"part '{name}': no pin")
    _typed(name, "pin", _pin, "a pin number or name")(block["pin"])
    keys = _KEYS[kind]
    result = {"kind": kind, "pin": block["pin"]}
    for key in block:
        if key not in keys and key not in ("kind", "pin"):
            article = "an" if kind[0] in "aeiou" else "a"
            raise Refusal(f"part '{name}': unknown key '{key}' for {article} {kind}")
    for key in keys:
        default, checker = keys[key]
        value = block.get(key, default)
        checker(name)(value)
        result[key] = value
    return result


def check_config(config):
    """{name: settings} for a parts map, or Refusal naming the first problem."""
    if not isinstance(config, dict):
        raise Refusal("parts config is not a map")
    checked = {}
    pins = {}
    for name in sorted(config):
        part = settings(name, config[name])
        pin = part["pin"]
        if pin in pins:
            raise Refusal(f"parts '{pins[pin]}' and '{name}' both use pin {pin!r}")
        pins[pin] = name
        checked[name] = part
    return checked


class Input:
    """A digital input: reports a bool once at start and on every change that stays debounce_ms."""

    kind = "input"

    def __init__(self, name, cfg, hw, now_ms):
        self.name = name
        self._pin = hw.input(cfg["pin"], cfg["pull"])
        self._invert = cfg["invert"]
        self._debounce = cfg["debounce_ms"]
        self.value = self._read()
        self._started = False
        self._candidate = None
        self._since = now_ms

    def _read(self):
        return bool(self._pin.value()) != self._invert

    def tick(self, now_ms):
        reports = []
        if not self._started:
            self._started = True
            reports.append(self.value)
        raw = self._read()
        if raw == self.value:
            self._candidate = None
            return reports
        if raw != self._candidate:
            self._candidate = raw
            self._since = now_ms
        if now_ms - self._since >= self._debounce:
            self.value = raw
            self._candidate = None
            reports.append(raw)
        return reports

    def next_deadline(self, now_ms):
        if self._candidate is None:
            return None
        return max(0, self._since + self._debounce - now_ms)

    def read(self):
        return self.value

    def write(self, value, now_ms):
        raise Refusal(f"part '{self.name}' is an input")

    def close(self):
        self._pin.close()


class Output:
    """A digital output or relay; min_on_ms/min_off_ms delay a switch, the newest value wins.

    The times count from the last switch, and from the start (a relay that
    protects a compressor must not switch on at once after a reset either).
    """

    kind = "output"

    def __init__(self, name, cfg, hw, now_ms):
        self.name = name
        self._pin = hw.output(cfg["pin"])
        self._invert = cfg["invert"]
        self._min_on = cfg["min_on_ms"]
        self._min_off = cfg["min_off_ms"]
        self.value = cfg["init"]
        self._pending = None
        self._switched = now_ms
        self._apply(self.value)

    def _apply(self, value):
        self._pin.value(1 if value != self._invert else 0)

    def _hold(self):
        return self._min_on if self.value else self._min_off

    def write(self, value, now_ms):
        if not isinstance(value, bool) and value not in (0, 1):
            raise Refusal(f"output '{self.name}' takes true or false, not {value!r}")
        value = bool(value)
        self._pending = None
        if value == self.value:
            return
        if now_ms - self._switched >= self._hold():
            self._switch(value, now_ms)
        else:
            self._pending = value

    def _switch(self, value, now_ms):
        self.value = value
        self._switched = now_ms
        self._apply(value)

    def tick(self, now_ms):
        if self._pending is not None and now_ms - self._switched >= self._hold():
            value, self._pending = self._pending, None
            self._switch(value, now_ms)
        return ()

    def next_deadline(self, now_ms):
        if self._pending is None:
            return None
        return max(0, self._switched + self._hold() - now_ms)

    def read(self):
        return self.value

    def close(self):
        self._pin.close()


class _Periodic:
    """A part checked every interval_ms, the first time at once."""

    def _setup_interval(self, cfg, now_ms):
        self._interval = cfg["interval_ms"]
        self._next = now_ms

    def _due(self, now_ms):
        if now_ms < self._next:
            return False
        self._next = now_ms + self._interval  # no catching up after a stall
        return True

    def next_deadline(self, now_ms):
        return max(0, self._next - now_ms)

    def write(self, value, now_ms):
        raise Refusal(f"part '{self.name}' is {self._article} {self.kind}")


class Adc(_Periodic):
    """An analog input: raw * scale + offset, reported when it changed by >= threshold.

    The first reading is reported at once; a reading equal to the last
    report is never reported again, also with threshold 0.
    """

    kind = "adc"
    _article = "an"

    def __init__(self, name, cfg, hw, now_ms):
        self.name = name
        self._adc = hw.adc(cfg["pin"])
        self._threshold = cfg["threshold"]
        self._scale = cfg["scale"]
        self._offset = cfg["offset"]
        self._setup_interval(cfg, now_ms)
        self.value = None
        self._reported = None

    def _read(self):
        return self._adc.read_u16() * self._scale + self._offset

    def tick(self, now_ms):
        if not self._due(now_ms):
            return ()
        value = self._read()
        self.value = value
        last = self._reported
        if last is not None and (value == last or abs(value - last) < self._threshold):
            return ()
        self._reported = value
        return (value,)

    def read(self):
        if self.value is None:
            self.value = self._read()
        return self.value

    def close(self):
        self._adc.close()


class Counter(_Periodic):
    """Counts edges since the start; reports the count every interval_ms when it changed."""

    kind = "counter"
    _article = "a"

    def __init__(self, name, cfg, hw, now_ms):
        self.name = name
        self._counter = hw.counter(cfg["pin"], cfg["edge"], cfg["pull"])
        self._setup_interval(cfg, now_ms)
        self._reported = None

    def tick(self, now_ms):
        if not self._due(now_ms):
            return ()
        count = self._counter.count()
        if count == self._reported:
            return ()
        self._reported = count
        return (count,)

    def read(self):
        return self._counter.count()

    def close(self):
        self._counter.close()


class Pwm:
    """A PWM output: ``w`` takes a duty 0..1 (int or float)."""

    kind = "pwm"

    def __init__(self, name, cfg, hw, now_ms):
        self.name = name
        self._pwm = hw.pwm(cfg["pin"], cfg["freq"])
        self.value = None
        self._set(cfg["init"])

    def _set(self, duty):
        self.value = float(duty)
        self._pwm.duty(self.value)

    def write(self, value, now_ms):
        if not _is_number(value):
            raise Refusal(f"pwm '{self.name}' takes a duty 0..1, not {value!r}")
        if not 0 <= value <= 1:
            raise Refusal(f"pwm duty {value!r} not in 0..1")
        self._set(value)

    def tick(self, now_ms):
        return ()

    def next_deadline(self, now_ms):
        return None

    def read(self):
        return self.value

    def close(self):
        self._pwm.close()


_CLASSES = {"input": Input, "output": Output, "adc": Adc, "pwm": Pwm, "counter": Counter}


class Parts:
    """All configured parts; the app's one handle on them."""

    def __init__(self, config, hw, now_ms):
        checked = check_config(config)  # before building anything
        self.config = config
        self._names = sorted(checked)  # MicroPython's dicts keep no order
        self._parts = {}
        try:
            for name in self._names:
                cfg = checked[name]
                self._parts[name] = _CLASSES[cfg["kind"]](name, cfg, hw, now_ms)
        except Exception:
            self.close()
            raise

    def _part(self, name):
        part = self._parts.get(name) if isinstance(name, str) else None
        if part is None:
            raise Refusal(f"no part {name!r}")
        return part

    def tick(self, now_ms):
        """[(part, value)] to report now, in part-name order."""
        reports = []
        for name in self._names:
            for value in self._parts[name].tick(now_ms):
                reports.append((name, value))
        return reports

    def next_deadline(self, now_ms):
        """ms until a part needs a tick for time's sake, or None (inputs need polling anyway)."""
        soonest = None
        for part in self._parts.values():
            due = part.next_deadline(now_ms)
            if due is not None and (soonest is None or due < soonest):
                soonest = due
        return soonest

    def write(self, name, value, now_ms):
        self._part(name).write(value, now_ms)

    def read(self, name):
        return self._part(name).read()

    def kinds(self):
        return {name: part.kind for name, part in self._parts.items()}

    def close(self):
        for part in self._parts.values():
            try:
                part.close()
            except Exception:  # a pin that will not let go must not stop a cfg
                pass
        self._parts = {}
