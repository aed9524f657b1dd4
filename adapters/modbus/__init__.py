"""The Modbus adapters: a device's registers polled into paths, and paths served as registers.

The client adapter (``type = "modbus"``): `adapter` reads the settings and
runs a connection, `session` polls and writes, `plan` combines reads,
`device` picks the transport: `tcp_client` (Modbus TCP on a trio socket)
or `client` (pymodbus's sync client in a worker thread, for serial RTU).

The server adapter (``type = "modbus_server"``): `server_adapter` reads the
settings and runs it, `server_session` answers clients from the register
`image` and writes their values to the journal, `server` is one
connection's protocol, `tcp_server` the trio listener.

Shared: `registers` is the value codec, `mapping` the map entries' keys,
`mbap` and `pdu` the sans-io Modbus TCP codec.
"""
