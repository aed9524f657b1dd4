"""The MQTT client against a real mosquitto (tests/adapters/mqtt/mosquitto_broker.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from mosquitto_broker import Mosquitto, dynamic_security_plugin

from moat_log.adapters.mqtt.client import Message, MqttClient, MqttOptions, Will, open_mqtt
from moat_log.errors import AdapterError, BusDataError, BusUnavailableError

CHILD = Path(__file__).with_name("mqtt_will_child.py")


def opts(broker: Mosquitto, client_id: str, **more: Any) -> MqttOptions:
    return MqttOptions("127.0.0.1", port=broker.port, client_id=client_id, **more)


async def next_message(client: MqttClient) -> Message:
    with trio.fail_after(5):
        return await client.receive()


async def test_publish_and_subscribe_round_trip(mosquitto: Mosquitto) -> None:
    async with (
        open_mqtt(opts(mosquitto, "reader")) as reader,
        open_mqtt(opts(mosquitto, "writer")) as writer,
    ):
        await reader.subscribe([("home/#", 1)])
        await writer.publish("home/lamp", b"on", qos=1)
        await writer.publish("home/door", b"\x00\xff", qos=0)
        assert await next_message(reader) == Message("home/lamp", b"on", 1, False, ())
        assert await next_message(reader) == Message("home/door", b"\x00\xff", 0, False, ())


async def test_messages_iterates_in_order(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "self")) as client:
        await client.subscribe([("n", 0)], no_local=False)
        for i in range(50):
            await client.publish("n", b"%d" % i)
        seen = []
        with trio.fail_after(5):
            async for message in client.messages:
                seen.append(int(message.payload))
                if len(seen) == 50:
                    break
        assert seen == list(range(50))


async def test_qos1_publish_returns_only_after_the_puback(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "writer")) as client:
        done: list[int] = []

        async def publish(qos: int) -> None:
            await client.publish("t", b"x", qos=qos)
            done.append(qos)

        mosquitto.pause()  # the broker is there, answering nothing
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, 0)
            nursery.start_soon(publish, 1)
            await trio.testing.wait_all_tasks_blocked()
            assert done == [0], "qos 0 returns once written, qos 1 waits for the broker"
            mosquitto.resume()
        assert done == [0, 1]


async def test_qos0_publish_the_kernel_cannot_take_at_once_waits_until_written(
    mosquitto: Mosquitto,
) -> None:
    big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than the socket buffers hold
    async with (
        open_mqtt(opts(mosquitto, "reader")) as reader,
        open_mqtt(opts(mosquitto, "writer")) as writer,
    ):
        await reader.subscribe([("big", 0)])
        written = False

        async def publish() -> None:
            nonlocal written
            await writer.publish("big", big)
            written = True

        mosquitto.pause()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            await trio.testing.wait_all_tasks_blocked()
            assert not written, "returned before the kernel took the whole packet"
            assert len(writer._unwritten) == 1  # waiting on the writer task
            mosquitto.resume()
        assert (await next_message(reader)).payload == big


async def test_retained_message_reaches_a_later_subscriber_flagged_retained(
    mosquitto: Mosquitto,
) -> None:
    async with open_mqtt(opts(mosquitto, "writer")) as writer:
        await writer.publish("state/lamp", b"on", qos=1, retain=True)
    async with open_mqtt(opts(mosquitto, "late")) as late:
        await late.subscribe([("state/#", 1)])
        assert await next_message(late) == Message("state/lamp", b"on", 1, True, ())
        async with open_mqtt(opts(mosquitto, "writer")) as writer:
            await writer.publish("state/lamp", b"off", qos=1, retain=True)
        # A live message is not flagged retained, even when it was published so.
        assert await next_message(late) == Message("state/lamp", b"off", 1, False, ())


async def test_user_properties_arrive_in_order(mosquitto: Mosquitto) -> None:
    props = (("moat-origin", "node-a:17"), ("x", "1"), ("x", "2"))
    async with open_mqtt(opts(mosquitto, "self")) as client:
        await client.subscribe([("p", 1)], no_local=False)
        await client.publish("p", b"v", qos=1, user_properties=props)
        assert (await next_message(client)).user_properties == props


async def test_no_local_suppresses_our_own_messages(mosquitto: Mosquitto) -> None:
    async with (
        open_mqtt(opts(mosquitto, "us")) as us,
        open_mqtt(opts(mosquitto, "them")) as them,
    ):
        await us.subscribe([("a/#", 1)])  # no_local=True is the default
        await us.publish("a/ours", b"1", qos=1)  # routed before the PUBACK came
        await them.publish("a/theirs", b"2", qos=1)
        assert (await next_message(us)).topic == "a/theirs"


async def test_without_no_local_our_own_messages_come_back(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "us")) as us:
        await us.subscribe([("a/#", 1)], no_local=False)
        await us.publish("a/ours", b"1", qos=1)
        assert (await next_message(us)).topic == "a/ours"


async def test_unsubscribed_topics_stop_arriving(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "self")) as client:
        await client.subscribe([("a", 1), ("b", 1)], no_local=False)
        await client.unsubscribe(["a"])
        await client.publish("a", b"gone", qos=1)
        await client.publish("b", b"kept", qos=1)
        assert (await next_message(client)).payload == b"kept"
        await client.unsubscribe(["never-subscribed"])  # 0x11, no failure


async def test_will_is_published_when_the_client_is_killed(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "watcher")) as watcher:
        await watcher.subscribe([("status/doomed", 1)])
        child = await trio.lowlevel.open_process(
            [sys.executable, str(CHILD), str(mosquitto.port), "status/doomed"],
            stdout=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            said = b""
            with trio.fail_after(30):
                while not said.endswith(b"\n"):  # a pipe may hand the line over in pieces
                    chunk = await child.stdout.receive_some(100)
                    assert chunk, "the child exited before it connected"
                    said += chunk
            assert said == b"connected\n"
        finally:
            child.kill()  # SIGKILL: no DISCONNECT, the kernel closes the socket
            await child.wait()
        assert await next_message(watcher) == Message("status/doomed", b"offline", 1, False, ())


async def test_will_is_not_published_on_a_clean_exit(mosquitto: Mosquitto) -> None:
    will = Will("status/leaver", b"offline", qos=1, retain=False)
    async with open_mqtt(opts(mosquitto, "watcher")) as watcher:
        await watcher.subscribe([("status/leaver", 1)])
        mark = mosquitto.mark()
        async with open_mqtt(opts(mosquitto, "leaver", will=will)):
            pass
        # Once the broker handled the DISCONNECT, a will would be queued before this marker.
        await trio.to_thread.run_sync(
            lambda: mosquitto.wait_for_line("Client leaver disconnected", after=mark)
        )
        async with open_mqtt(opts(mosquitto, "marker")) as marker:
            await marker.publish("status/leaver", b"marker", qos=1)
        assert (await next_message(watcher)).payload == b"marker"


async def test_will_is_published_when_the_body_fails(mosquitto: Mosquitto) -> None:
    will = Will("status/failer", b"offline", qos=1, retain=False)
    async with open_mqtt(opts(mosquitto, "watcher")) as watcher:
        await watcher.subscribe([("status/failer", 1)])
        with pytest.raises(RuntimeError, match="adapter bug"):  # as raised, not in a group
            async with open_mqtt(opts(mosquitto, "failer", will=will)):
                raise RuntimeError("adapter bug")
        assert (await next_message(watcher)).payload == b"offline"


async def test_broker_killed_while_the_body_runs(mosquitto: Mosquitto) -> None:
    reached = False
    with trio.fail_after(5):
        with pytest.raises(BusUnavailableError, match=f"127.0.0.1:{mosquitto.port}") as caught:
            async with open_mqtt(opts(mosquitto, "victim")) as client:
                await client.subscribe([("x", 0)])
                mosquitto.kill()
                started = time.monotonic()
                await client.receive()
                reached = True
    assert not reached, "the body is cancelled, not handed a message"
    assert time.monotonic() - started < 1.0
    assert "closed the connection" in str(caught.value)


async def test_publish_in_another_task_raises_when_the_connection_goes(
    mosquitto: Mosquitto,
) -> None:
    errors: list[BaseException] = []

    async def publish(client: MqttClient) -> None:
        try:
            await client.publish("x", b"1", qos=1)
        except BusUnavailableError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:  # the publisher runs outside the body
        with pytest.raises(BusUnavailableError):
            async with open_mqtt(opts(mosquitto, "c")) as client:
                mosquitto.pause()
                nursery.start_soon(publish, client)
                await trio.testing.wait_all_tasks_blocked()  # it awaits its PUBACK
                mosquitto.kill()
                await trio.sleep_forever()
    assert [type(e) for e in errors] == [BusUnavailableError]


async def test_a_new_client_after_a_restart_sees_persisted_retained_messages(
    make_mosquitto: Callable[..., Mosquitto],
) -> None:
    broker = make_mosquitto(persistent=True)
    port = broker.port
    async with open_mqtt(opts(broker, "writer")) as writer:
        await writer.publish("kept", b"yes", qos=1, retain=True)
    broker.stop()  # SIGTERM: mosquitto saves its persistence file
    broker.restart()
    assert broker.port == port
    async with open_mqtt(opts(broker, "reader")) as reader:
        await reader.subscribe([("kept", 1)])
        assert await next_message(reader) == Message("kept", b"yes", 1, True, ())


async def test_nothing_listening_names_the_address() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and is closed now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = MqttOptions("127.0.0.1", port=port, client_id="lonely")
    with pytest.raises(BusUnavailableError, match=f"127.0.0.1:{port}: connection refused"):
        async with open_mqtt(options):
            pytest.fail("connected to nothing")


async def test_a_broker_that_never_answers_times_out() -> None:
    with socket.socket() as mute:  # the kernel accepts; nobody answers CONNECT
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        port = mute.getsockname()[1]
        options = MqttOptions("127.0.0.1", port=port, client_id="c", connect_timeout=0.2)
        with (
            trio.fail_after(5),
            pytest.raises(BusUnavailableError, match=r"no CONNACK within 0\.2 s"),
        ):
            async with open_mqtt(options):
                pytest.fail("connected to a mute socket")


async def test_bad_credentials_say_so(make_mosquitto: Callable[..., Mosquitto]) -> None:
    broker = make_mosquitto(users={"alice": "s3cret"})
    async with open_mqtt(opts(broker, "ok", username="alice", password="s3cret")) as client:
        await client.publish("x", b"1", qos=1)
    # mosquitto 2.0 answers a wrong password with "Not authorized", not 0x86.
    refused = "refused the connection: Not authorized [(]check the username and password[)]"
    with pytest.raises(BusUnavailableError, match=refused):
        async with open_mqtt(opts(broker, "bad", username="alice", password="wrong")):
            pytest.fail("logged in with a wrong password")
    with pytest.raises(BusUnavailableError, match=refused):
        async with open_mqtt(opts(broker, "anonymous")):
            pytest.fail("logged in anonymously")


async def test_a_refused_publication_raises_adapter_error(
    make_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite open/#\n")  # for anonymous clients: open/# only
    broker = make_mosquitto(extra=(f"acl_file {acl}",))
    async with open_mqtt(opts(broker, "c")) as client:
        with pytest.raises(AdapterError, match="refused the message to 'closed/x': Not authorized"):
            await client.publish("closed/x", b"1", qos=1)
        await client.publish("open/x", b"1", qos=1)  # the client goes on


async def test_a_refused_subscription_raises_adapter_error(
    make_mosquitto: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    # mosquitto's acl_file never refuses a SUBSCRIBE; its dynamic-security plugin does.
    plugin = dynamic_security_plugin()
    assert plugin is not None, "mosquitto's package ships mosquitto_dynamic_security.so"
    config = tmp_path / "dynsec.json"
    access = {"publishClientSend": True, "publishClientReceive": True, "subscribe": False}
    config.write_text(json.dumps({"defaultACLAccess": {**access, "unsubscribe": True}}))
    broker = make_mosquitto(extra=(f"plugin {plugin}", f"plugin_opt_config_file {config}"))
    async with open_mqtt(opts(broker, "c")) as client:
        with pytest.raises(AdapterError, match=r"refused the subscription to 'x/#' \(Not auth"):
            await client.subscribe([("x/#", 1)])
        await client.publish("x/y", b"1", qos=1)  # the client goes on
        with pytest.raises(BusDataError, match="Invalid subscription filter"):  # paho's check
            await client.subscribe([("a/#/b", 1)])


async def test_a_slow_reader_gets_a_flood_complete_and_in_order_within_the_bound(
    make_mosquitto: Callable[..., Mosquitto],
) -> None:
    count, bound = 20_000, 100
    # The broker may queue without limit for a slow client: the test is about our client.
    broker = make_mosquitto(extra=("max_queued_messages 0",))
    async with (
        open_mqtt(opts(broker, "reader"), buffer=bound) as reader,
        open_mqtt(opts(broker, "flood")) as flood,
    ):
        await reader.subscribe([("flood", 1)])

        async def publish_all() -> None:
            for i in range(count):
                await flood.publish("flood", b"%d" % i, qos=0)

        seen = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_all)
                async for message in reader.messages:
                    assert reader.buffered < bound
                    seen.append(int(message.payload))
                    if len(seen) % 50 == 0:  # slower than the flood: let the others run
                        await trio.testing.wait_all_tasks_blocked()
                    if len(seen) == count:
                        break
        assert seen == list(range(count))
        assert reader.peak_buffered == bound, "the reader fell behind, and the bound held"


async def test_cancelled_publish_is_clean(mosquitto: Mosquitto) -> None:
    async with (
        open_mqtt(opts(mosquitto, "reader")) as reader,
        open_mqtt(opts(mosquitto, "writer")) as writer,
    ):
        await reader.subscribe([("c", 1)])
        with trio.CancelScope() as before:
            before.cancel()
            await writer.publish("c", b"never sent", qos=1)
        mosquitto.pause()
        async with trio.open_nursery() as nursery:
            waiting = trio.CancelScope()

            async def publish() -> None:
                with waiting:
                    await writer.publish("c", b"sent, ack awaited", qos=1)
                    pytest.fail("acknowledged by a paused broker")

            nursery.start_soon(publish)
            await trio.testing.wait_all_tasks_blocked()
            waiting.cancel()
        mosquitto.resume()
        await writer.publish(
            "c", b"after", qos=1
        )  # the late PUBACK of the cancelled one is ignored
        assert (await next_message(reader)).payload == b"sent, ack awaited"
        assert (await next_message(reader)).payload == b"after"
        assert writer._replies == {}


async def test_mqtt_311_round_trip_and_its_limits(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "old", protocol=4)) as client:
        with pytest.raises(AdapterError, match="no_local need MQTT 5"):
            await client.subscribe([("t", 1)])
        await client.subscribe([("t", 1)], no_local=False)
        with pytest.raises(AdapterError, match="user properties need MQTT 5"):
            await client.publish("t", b"x", user_properties=[("a", "b")])
        await client.publish("t", b"x", qos=1)
        assert await next_message(client) == Message("t", b"x", 1, False, ())


async def test_bad_topics_are_bus_data_errors(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "c")) as client:
        with pytest.raises(BusDataError, match="cannot publish to MQTT topic 'a/#'"):
            await client.publish("a/#", b"x")
        with pytest.raises(BusDataError, match="at least one topic filter"):
            await client.subscribe([])
        assert isinstance(BusDataError("x"), ValueError)


async def test_a_closed_client_refuses_work(mosquitto: Mosquitto) -> None:
    async with open_mqtt(opts(mosquitto, "c")) as client:
        pass
    with pytest.raises(AdapterError, match="is closed"):
        await client.publish("t", b"x")
    with pytest.raises(AdapterError, match="is closed"):
        await client.receive()


def test_options_validate_and_hide_the_password() -> None:
    options = MqttOptions("h", client_id="c", username="u", password="hunter2")
    assert "hunter2" not in repr(options)
    assert options.address == "h:1883"
    with pytest.raises(ValueError, match="port"):
        MqttOptions("h", client_id="c", port=0)
    with pytest.raises(ValueError, match="needs a username"):
        MqttOptions("h", client_id="c", password="p")
    with pytest.raises(ValueError, match="will qos"):
        Will("t", b"", qos=3)
    with pytest.raises(ValueError, match="without wildcards"):
        Will("status/#", b"")
