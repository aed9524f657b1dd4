# mypy: ignore-errors
"""Cases for firmware/parts.py and hw.py that CPython and MicroPython both run.

Every ``case_*`` function is one test: tests/firmware/test_fw_parts.py runs
them under pytest (firmware/ on sys.path) and, all together, in real
MicroPython through the WASI runner (``run_all`` prints one line per case).
So this module is written in the subset both run: no pytest, no typing.
The clock is explicit: every tick is given its time.
"""

import hw
import parts


class FakePin:
    def __init__(self, level=0):
        self.level = level
        self.written = []
        self.duties = []
        self.pulses = 0
        self.closed = False

    def value(self, value=None):
        if value is None:
            return self.level
        self.written.append(value)
        return None

    def read_u16(self):
        return self.level

    def duty(self, duty):
        self.duties.append(duty)

    def count(self):
        return self.pulses

    def close(self):
        self.closed = True


class FakeHardware:
    """Pins as FakePin objects the case sets directly; keeps what was asked for."""

    def __init__(self):
        self.pins = {}
        self.asked = []

    def _pin(self, pin, *how):
        self.asked.append((pin,) + how)
        return self.pins.setdefault(pin, FakePin())

    def input(self, pin, pull=None):
        return self._pin(pin, "input", pull)

    def output(self, pin):
        return self._pin(pin, "output")

    def adc(self, pin):
        return self._pin(pin, "adc")

    def pwm(self, pin, freq):
        return self._pin(pin, "pwm", freq)

    def counter(self, pin, edge, pull=None):
        return self._pin(pin, "counter", edge)


def refusal(call, *args):
    """The reason *call* refused with (AssertionError when it did not)."""
    try:
        call(*args)
    except parts.Refusal as refused:
        return str(refused)
    raise AssertionError("not refused")


def case_input_reports_at_start_and_on_debounced_change():
    fake = FakeHardware()
    fake.pins[4] = FakePin(1)
    p = parts.Parts({"door": {"kind": "input", "pin": 4, "pull": "up"}}, fake, 0)
    assert fake.asked == [(4, "input", "up")]
    assert p.tick(0) == [("door", True)]
    assert p.tick(5) == []
    fake.pins[4].level = 0
    assert p.tick(10) == []  # not yet stable for 20 ms
    assert p.next_deadline(10) == 20
    fake.pins[4].level = 1
    assert p.tick(15) == []  # a bounce: back where it was
    fake.pins[4].level = 0
    assert p.tick(20) == []
    assert p.tick(39) == []
    assert p.tick(40) == [("door", False)]
    assert p.read("door") is False
    assert p.next_deadline(41) is None


def case_input_invert_and_no_debounce():
    fake = FakeHardware()
    p = parts.Parts({"s": {"kind": "input", "pin": 2, "invert": True, "debounce_ms": 0}}, fake, 0)
    assert p.tick(0) == [("s", True)]
    fake.pins[2].level = 1
    assert p.tick(1) == [("s", False)]


def case_input_refuses_writes():
    p = parts.Parts({"door": {"kind": "input", "pin": 4}}, FakeHardware(), 0)
    assert refusal(p.write, "door", True, 0) == "part 'door' is an input"


def case_output_init_invert_and_write():
    fake = FakeHardware()
    p = parts.Parts({"pump": {"kind": "output", "pin": 5, "invert": True}}, fake, 0)
    assert fake.pins[5].written == [1]  # init false, inverted
    p.write("pump", True, 10)
    assert fake.pins[5].written == [1, 0]
    assert p.read("pump") is True
    assert p.tick(11) == []  # outputs never report
    assert refusal(p.write, "pump", "on", 12) == "output 'pump' takes true or false, not 'on'"


def case_output_min_times_delay_and_newest_wins():
    fake = FakeHardware()
    config = {"k": {"kind": "output", "pin": 3, "min_on_ms": 100, "min_off_ms": 50}}
    p = parts.Parts(config, fake, 0)
    pin = fake.pins[3]
    p.write("k", True, 10)  # off since 0: min_off not over
    assert pin.written == [0]
    assert p.next_deadline(10) == 40
    p.tick(49)
    assert pin.written == [0]
    p.tick(50)
    assert pin.written == [0, 1]
    p.write("k", False, 60)  # on since 50: wait until 150
    p.write("k", True, 70)  # newest wins: stays on, nothing pending
    assert p.next_deadline(70) is None
    p.write("k", False, 80)
    p.tick(149)
    assert pin.written == [0, 1]
    p.tick(150)
    assert pin.written == [0, 1, 0]
    assert p.read("k") is False


def case_adc_interval_threshold_scale_offset():
    fake = FakeHardware()
    fake.pins[7] = FakePin(1000)
    config = {"t": {"kind": "adc", "pin": 7, "interval_ms": 100, "threshold": 10, "scale": 2}}
    p = parts.Parts(config, fake, 0)
    assert p.tick(0) == [("t", 2000)]
    fake.pins[7].level = 1004  # 2008: moved by 8 < 10
    assert p.tick(50) == []  # not due
    assert p.tick(100) == []
    assert p.next_deadline(100) == 100
    fake.pins[7].level = 1006  # 2012: moved by 12 since the last report
    assert p.tick(199) == []
    assert p.tick(200) == [("t", 2012)]
    assert p.read("t") == 2012
    assert refusal(p.write, "t", 1, 201) == "part 't' is an adc"


def case_adc_float_when_scale_is_float_and_threshold_zero_means_any_change():
    fake = FakeHardware()
    fake.pins[7] = FakePin(100)
    config = {"t": {"kind": "adc", "pin": 7, "interval_ms": 10, "scale": 0.5, "offset": -1}}
    p = parts.Parts(config, fake, 0)
    [(_name, value)] = p.tick(0)
    assert isinstance(value, float)
    assert value == 49.0
    assert p.tick(10) == []  # unchanged
    fake.pins[7].level = 101
    assert p.tick(20) == [("t", 49.5)]


def case_pwm_init_write_and_refusals():
    fake = FakeHardware()
    p = parts.Parts({"fan": {"kind": "pwm", "pin": 6, "freq": 500, "init": 0.5}}, fake, 0)
    assert fake.asked == [(6, "pwm", 500)]
    p.write("fan", 1, 1)
    p.write("fan", 0.25, 2)
    assert fake.pins[6].duties == [0.5, 1.0, 0.25]
    assert p.read("fan") == 0.25
    assert refusal(p.write, "fan", 1.5, 3) == "pwm duty 1.5 not in 0..1"
    assert refusal(p.write, "fan", True, 3) == "pwm 'fan' takes a duty 0..1, not True"
    assert fake.pins[6].duties == [0.5, 1.0, 0.25]


def case_counter_reports_count_every_interval_when_changed():
    fake = FakeHardware()
    config = {"m": {"kind": "counter", "pin": 8, "edge": "falling", "interval_ms": 1000}}
    p = parts.Parts(config, fake, 0)
    assert fake.asked == [(8, "counter", "falling")]
    assert p.tick(0) == [("m", 0)]
    fake.pins[8].pulses = 3
    assert p.tick(999) == []
    assert p.tick(1000) == [("m", 3)]
    assert p.tick(2000) == []
    assert p.read("m") == 3


def case_parts_names_kinds_and_unknown_part():
    config = {
        "door": {"kind": "input", "pin": 4},
        "pump": {"kind": "output", "pin": 5},
        "fan": {"kind": "pwm", "pin": 6},
    }
    p = parts.Parts(config, FakeHardware(), 0)
    assert p.kinds() == {"door": "input", "pump": "output", "fan": "pwm"}
    assert refusal(p.write, "lamp", True, 0) == "no part 'lamp'"
    assert refusal(p.read, "lamp") == "no part 'lamp'"


def case_config_errors_name_the_problem():
    def reason(config):
        return refusal(parts.check_config, config)

    assert reason([]) == "parts config is not a map"
    assert reason({"a": {"kind": "relay", "pin": 1}}) == (
        "part 'a': kind 'relay' not one of input, output, adc, pwm, counter"
    )
    assert reason({"a": {"kind": "input"}}) == "part 'a': no pin"
    assert reason({"a": {"kind": "input", "pin": 1, "pul": "up"}}) == (
        "part 'a': unknown key 'pul' for an input"
    )
    assert reason({"a": {"kind": "input", "pin": 1, "pull": "sideways"}}) == (
        "part 'a': pull 'sideways' not one of up, down, none"
    )
    assert reason({"a": {"kind": "output", "pin": 1, "min_on_ms": -1}}) == (
        "part 'a': min_on_ms -1 is not an int >= 0"
    )
    assert reason({"a": {"kind": "input", "pin": 1}, "b": {"kind": "output", "pin": 1}}) == (
        "parts 'a' and 'b' both use pin 1"
    )
    assert reason({"a": {"kind": "pwm", "pin": 1, "init": 2}}) == (
        "part 'a': init 2 is not a duty 0..1"
    )


def case_bad_config_builds_nothing():
    fake = FakeHardware()
    config = {"a": {"kind": "output", "pin": 1}, "b": {"kind": "output", "pin": "x", "init": 3}}
    refusal(parts.Parts, config, fake, 0)
    assert fake.asked == []


def case_close_releases_every_pin():
    fake = FakeHardware()
    p = parts.Parts({"a": {"kind": "input", "pin": 1}, "b": {"kind": "adc", "pin": 2}}, fake, 0)
    p.close()
    assert fake.pins[1].closed
    assert fake.pins[2].closed
    assert p.kinds() == {}


def case_clock_does_not_wrap():
    raw = [(1 << 30) - 5]

    def ticks():
        return raw[0]

    def diff(new, old):  # time.ticks_diff for a 30-bit ticks_ms
        half = 1 << 29
        return ((new - old + half) & ((1 << 30) - 1)) - half

    clock = hw.Clock(ticks, diff)
    assert clock.now() == 0
    raw[0] = 3  # wrapped
    assert clock.now() == 8
    raw[0] = 1003
    assert clock.now() == 1008


def case_sim_hardware_pins_over_the_channel():
    sent = []
    incoming = ['{"pin": 4, "in": 1}\n{"pin": 7, "adc": 1234}\nnot json\n{"x": 1}']

    def channel(line):
        if line:
            sent.append(line)
        return incoming.pop(0) if incoming else ""

    sim = hw.SimHardware(root="/nowhere", channel=channel)
    door = sim.input(4, "up")
    pump = sim.output(5)
    level = sim.adc(7)
    meter = sim.counter(8, "rising")
    pump.value(1)  # its call also brings the incoming lines
    assert door.value() == 1
    assert level.read_u16() == 1234
    incoming.append('{"pin": 8, "pulses": 3}\n{"pin": 4, "in": 0}')
    sim.service()
    assert meter.count() == 3
    assert door.value() == 0
    sim.pwm(6, 1000).duty(0.25)
    import json

    assert [json.loads(line) for line in sent] == [
        {"pin": 5, "out": 1},
        {"pin": 6, "duty": 0.25},
    ]


def case_sim_input_defaults_to_its_pull():
    sim = hw.SimHardware(root="/nowhere", channel=lambda line: "")
    assert sim.input(1, "up").value() == 1
    assert sim.input(2, "down").value() == 0
    assert sim.input(3).value() == 0


def cases():
    return sorted(name for name in globals() if name.startswith("case_"))


def run_all():
    """Run every case; print ``ok NAME`` or ``FAIL NAME: error`` per line, then ``done``."""
    import sys

    for name in cases():
        try:
            globals()[name]()
        except Exception as error:  # report every case, not just the first failure
            print("FAIL", name + ":", repr(error))
            sys.print_exception(error)
        else:
            print("ok", name)
    print("done")
