"""Serial satellites: MicroPython boards on a serial line (docs/satellites.md)."""
