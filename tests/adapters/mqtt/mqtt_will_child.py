"""A client with a will that says "connected" and then waits to be killed.

python mqtt_will_child.py PORT WILL_TOPIC
"""

from __future__ import annotations

import sys

import trio

from moat_log.adapters.mqtt.client import MqttOptions, Will, open_mqtt


async def main(port: int, topic: str) -> None:
    will = Will(topic, b"offline", qos=1, retain=False)
    options = MqttOptions("127.0.0.1", port=port, client_id="doomed", will=will)
    async with open_mqtt(options):
        print("connected", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), sys.argv[2])
