"""MicroPython satellite firmware (runs on the microcontroller)."""
