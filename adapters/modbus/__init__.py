"""The Modbus adapter: polls a device's registers into paths and writes owned paths back.

`adapter` reads the settings and runs a connection, `session` polls and
writes, `registers` is the value codec, `plan` combines reads, `client`
is pymodbus's sync client in a trio shell.
"""
