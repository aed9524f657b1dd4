"""The MQTT adapter: mapped paths published to a broker, messages turned into events.

See docs/adapters.md.  The pure parts (codecs, topic patterns, Home
Assistant discovery) are sans-io modules beside the trio client.
"""
