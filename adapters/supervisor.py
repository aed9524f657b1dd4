"""The node's adapters as supervised tasks: connect, serve, back off, reconnect.

`run_adapters` runs one `supervise` task per adapter in a nursery of its
own.  A connection that ends, however (`BusUnavailableError`, a bug in the
adapter, a bus library's own exception), is logged once per change of its
message, recorded in the adapter's status, and retried after a jittered
back-off (`moat_log.adapters.backoff`).  Nothing an adapter raises leaves
`supervise`; only cancellation (the node stopping) does.

Each adapter's out direction is an `AdapterOutput`, a side-effect projection
the node's runner feeds (`moat_log.projections.runner`); the supervisor
attaches it to every session the adapter reports and detaches it when the
session ends.  The adapters share the node's asyncio loop (for asyncio-only
bus libraries, `moat_log.adapters.asyncio_bridge`), started by the first
that asks and stopped after the last has stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from moat_log.errors import BusUnavailableError, MoatLogError

from .asyncio_bridge import open_lazy_asyncio_bridge
from .backoff import Backoff
from .config import AdapterConfig
from .contract import Adapter, AdapterLink
from .output import AdapterOutput
from .status import AdapterStatus

if TYPE_CHECKING:
    from moat_log.node._node import Node

__all__ = ["AdapterPlan", "plan_adapters", "run_adapters", "supervise"]

log = logging.getLogger("moat_log.adapters")


@dataclass(frozen=True, slots=True)
class AdapterPlan:
    """One adapter for one run of the node: its config, instance, status and output."""

    config: AdapterConfig
    adapter: Adapter | None  # None: disabled
    status: AdapterStatus
    output: AdapterOutput | None


def plan_adapters(configs: Sequence[AdapterConfig]) -> list[AdapterPlan]:
    """Fresh adapters for the configured ones (disabled ones only get a status)."""
    plans = []
    for config in configs:
        status = AdapterStatus(config.name, config.type, mappings=config.settings.describe())
        if not config.enabled:
            status.state = "disabled"
            plans.append(AdapterPlan(config, None, status, None))
            continue
        adapter = config.settings.create()
        plans.append(AdapterPlan(config, adapter, status, AdapterOutput(adapter)))
    return plans


async def run_adapters(
    node: Node,
    plans: Sequence[AdapterPlan],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Supervise every enabled adapter of *plans* until cancelled."""
    async with open_lazy_asyncio_bridge() as asyncio_loop, trio.open_nursery() as nursery:
        for plan in plans:
            if plan.adapter is not None and plan.output is not None:
                link = AdapterLink(
                    node,
                    plan.status,
                    durability=plan.config.durability,
                    asyncio_loop=asyncio_loop,
                )
                backoff = Backoff(plan.config.reconnect_first, plan.config.reconnect_max)
                nursery.start_soon(supervise, plan.adapter, link, plan.output, backoff)
        task_status.started()


async def supervise(
    adapter: Adapter, link: AdapterLink, output: AdapterOutput, backoff: Backoff
) -> None:
    """Run *adapter*'s connections one after the other until cancelled."""
    status = link.status
    last_logged: str | None = None
    try:
        while True:
            status.connecting()
            up_since: float | None = None
            try:
                async with trio.open_nursery() as nursery:
                    session = await nursery.start(adapter.run, link)
                    up_since = trio.current_time()
                    status.connected(time.time())
                    output.attach(session)
                    if last_logged is not None:
                        log.info("adapter %s: connected again", adapter.name)
                        last_logged = None
                raise BusUnavailableError("the connection ended")  # noqa: TRY301
            except Exception as exc:
                output.detach()
                message = _describe(exc)
                up_for = None if up_since is None else trio.current_time() - up_since
                delay = backoff.failed(up_for)
                status.failed(message, time.time(), delay)
                if message != last_logged:
                    _log_failure(adapter.name, exc, message, delay)
                    last_logged = message
                await trio.sleep(delay)
    finally:
        output.detach()
        status.stopped()


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, MoatLogError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _log_failure(name: str, exc: BaseException, message: str, delay: float) -> None:
    expected = isinstance(exc, MoatLogError) or (
        isinstance(exc, BaseExceptionGroup)
        and all(isinstance(e, MoatLogError) for e in exc.exceptions)
    )
    log.warning(
        "adapter %s: %s; reconnecting in %.1f s",
        name,
        message,
        delay,
        exc_info=None if expected else exc,  # a bug in the adapter: show where
    )
