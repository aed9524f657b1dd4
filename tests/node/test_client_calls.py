"""The client's single-reply waiter, `_Call`: woken once, also when finished early."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from moat_log import InvalidInputError, open_client
from moat_log.client import NodeConnectionError, _Call


async def test_a_call_finished_before_anyone_waits_returns_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = _Call()
    call.finish(error=NodeConnectionError("the node closed the connection"))
    with trio.fail_after(1):  # without the early return it would sleep for ever
        await call.wait()
    assert isinstance(call.error, NodeConnectionError)


async def test_a_waiting_call_is_woken_by_its_reply() -> None:
    call = _Call()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.wait)
        await trio.testing.wait_all_tasks_blocked()
        call.finish(result=42)
    assert call.done and call.result == 42


async def test_a_cancelled_waiter_leaves_no_task_to_wake(
    autojump_clock: trio.testing.MockClock,
) -> None:
    call = _Call()
    with trio.move_on_after(1):
        await call.wait()
    assert call.task is None
    call.finish(result=1)  # must not reschedule the task that left


@pytest.mark.parametrize("result", [None, 0, "x"])
async def test_a_result_is_kept_as_given(
    result: object, autojump_clock: trio.testing.MockClock
) -> None:
    call = _Call()
    call.finish(result=result)
    with trio.fail_after(1):
        await call.wait()
    assert call.result == result and call.error is None


@pytest.mark.parametrize(
    ("connect", "problem"),
    [
        ("127.0.0.1:99999", "the port '99999' is not a number 1 .. 65535"),
        ("127.0.0.1", "the port is missing"),
        ("fd00::1:27586", "write an IPv6 address in brackets"),
    ],
)
async def test_a_malformed_connect_address_is_refused_before_connecting(
    connect: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        async with open_client(connect=connect):
            pass
    message = str(caught.value)
    assert message.startswith(f"connect={connect!r}: {problem}")
    assert message.endswith("(or unix:PATH for a Unix socket)")
