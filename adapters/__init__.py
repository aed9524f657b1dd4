"""Bus adapters: one sub-package per bus (knx, onewire, modbus, serial, mqtt)."""
