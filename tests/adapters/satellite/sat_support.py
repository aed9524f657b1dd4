"""What the satellite tests share: the boiler's parts as a config table."""

from __future__ import annotations

#: The parts of the satellite "boiler" the tests drive: a door contact, a pump
#: relay and a fan on PWM (TOML, below an ``[adapters.boiler]`` table).
BOILER_PARTS = """
[adapters.boiler.parts.door]
kind = "input"
pin = 4
[adapters.boiler.parts.pump]
kind = "output"
pin = 5
[adapters.boiler.parts.fan]
kind = "pwm"
pin = 6
"""
