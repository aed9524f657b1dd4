"""The node's scripts: each a supervised trio task, replaced when its entry changes.

Theory of operation
-------------------
`run_scripts` reads every script of ``:.moat.script`` from the KV view with
the journal position they are as of, then follows the feed under that
prefix from there, so it sees every version any node, client or process
stores, once, in order.  For each script the `ScriptSupervisor` keeps the
winning version (greatest ``(hlc, origin)``, as the KV view) and decides
whether this node runs it (`moat_log.scripts.placement`; for ``any``
again whenever the set of live peers changes).

A script that should run here runs as one **instance**: a task in the
supervisor's nursery with its own cancel scope.  A new version (code or run
entry), a delete, ``enabled = false`` or a move to another node cancels
the instance and, if it should still run here, starts the new one: the node
itself goes on.  An instance:

1. compiles and executes the code in a fresh module namespace and opens an
   in-process client (`Node.connect_in_process`);
2. calls ``main(script)`` once if ``on_start``; then once per trigger, one
   call at a time: each new winner of a path under ``on_change`` (written
   by anyone but this script itself, so a script that writes what it
   watches does not loop), and every ``every`` seconds;
3. if ``main`` raises (or the code does not run), the error is recorded as
   an event at ``:.moat.error.script.NAME.NODE`` (message, count, first and
   last seen, the version), the instance waits ``retry`` seconds, doubling
   up to ``retry_max`` while the errors go on, and starts again.  Changes
   of the watched paths during the wait are not lost: the new instance goes
   on from the change after the one that failed.  A call that returns
   resets the wait.

After a node restart (or a ``kill -9``), instances start afresh: ``on_start``
runs again, and changes stored while the node was down do not trigger.  A
script that must not miss anything reconciles in its start call.
"""

from __future__ import annotations

import builtins
import linecache
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import trio

from moat_log.client import open_client_on
from moat_log.errors import MoatLogError, ScriptEntryError
from moat_log.event import Event, Op
from moat_log.journal.change import Change
from moat_log.journal.subscription import Overflow
from moat_log.path import Path
from moat_log.reserved import SCRIPT_ERRORS, SCRIPTS

from .context import ScriptContext
from .entry import ScriptEntry, script_name, script_path
from .placement import runs_here

if TYPE_CHECKING:
    from moat_log.node._node import Node

__all__ = ["ScriptState", "ScriptSupervisor", "error_path", "load_main", "run_scripts"]

log = logging.getLogger("moat_log.scripts")

#: Seconds between looks at the live peers (in memory; for ``where = "any"``).
PEER_CHECK: Final = 1.0
#: The source of the error records the node writes.
ERROR_SOURCE: Final = "node:scripts"
#: How much of a traceback an error record keeps.
TRACEBACK_CHARS: Final = 4000


def _set_event() -> trio.Event:
    event = trio.Event()
    event.set()
    return event


def error_path(name: str, node: str) -> Path:
    """Where node *node* records the errors of script *name*."""
    return SCRIPT_ERRORS / name / node


@dataclass
class ScriptState:
    """What the node knows and does about one script (``status``'s ``scripts``)."""

    name: str
    key: tuple[int, str] = (0, "")
    entry: ScriptEntry | None = None
    version: str = ""  # the id of the event holding the entry
    problem: str = ""  # why a stored entry is not used
    state: str = "stopped"
    starts: int = 0
    calls: int = 0
    errors: int = 0
    last_error: str = ""
    since: float = 0.0
    scope: trio.CancelScope | None = None
    #: Set once the instance of the version before has stopped.
    done: trio.Event = field(default_factory=_set_event)

    def report(self) -> dict[str, Any]:
        run = self.entry.run if self.entry is not None else None
        return {
            "state": self.state,
            "version": self.version,
            "where": str(run.where) if run else "",
            "user": run.user if run else None,
            "starts": self.starts,
            "calls": self.calls,
            "errors": self.errors,
            "last_error": self.last_error or self.problem,
            "since": int(self.since * 1e9),
        }


class ScriptSupervisor:
    """The scripts of one node: which run here, their instances, their status."""

    def __init__(self, node: Node, nursery: trio.Nursery) -> None:
        self.node = node
        self._nursery = nursery
        self.scripts: dict[str, ScriptState] = {}
        #: Called (without arguments) whenever a script's status changes.
        self.on_change: list[Callable[[], None]] = []
        #: The live nodes the last decision of where scripts run saw.
        self._decided_on: set[str] = {node.name}

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: state.report() for name, state in sorted(self.scripts.items())}

    def changed(self) -> None:
        for observer in list(self.on_change):
            observer()

    # --- versions -----------------------------------------------------------

    def apply(self, event: Event, position: int) -> None:
        """Take note of an event of ``:.moat.script``; replace the instance if it wins."""
        name = script_name(event.path)
        if name is None:
            return
        state = self.scripts.setdefault(name, ScriptState(name))
        key = (event.hlc, event.origin)
        if key <= state.key:
            return
        state.key, state.version, state.problem = key, str(event.id), ""
        state.entry = None
        if event.op is Op.SET:
            try:
                state.entry = ScriptEntry.from_value(name, event.value)
            except ScriptEntryError as exc:  # stored by a peer of another version
                state.problem = str(exc)
                log.warning("script %s (%s) is not used: %s", name, event.id, exc)
        self._stop(state)
        self._nursery.start_soon(self._clear_errors, name)
        self.reconcile(state, after=position)

    def reconcile(self, state: ScriptState, *, after: int | None = None) -> None:
        """Start or stop *state*'s instance so that it runs exactly where it should.

        A new instance is triggered by the changes after journal position
        *after*: for a new version, those after the version itself, so none
        stored right after it is missed; else (a script that moves here
        from a node that went away) those from now on.
        """
        entry = state.entry
        wanted = entry is not None and entry.run.enabled
        if wanted and entry is not None:
            self._decided_on = self.node.live_nodes()
            wanted = runs_here(state.name, entry.run.where, self.node.name, self._decided_on)
        if not wanted:
            self._stop(state)
            state.state = self._idle_state(state)
            self.changed()
            return
        if state.scope is None:
            assert entry is not None
            self._start(state, entry, self.node.feed.position if after is None else after)

    @staticmethod
    def _idle_state(state: ScriptState) -> str:
        if state.entry is None:
            return "broken" if state.problem else "deleted"
        return "disabled" if not state.entry.run.enabled else "elsewhere"

    def _start(self, state: ScriptState, entry: ScriptEntry, after: int) -> None:
        scope = trio.CancelScope()
        previous, state.done, state.scope = state.done, trio.Event(), scope
        instance = _Instance(self, state, entry, after)
        self._nursery.start_soon(instance.supervise, scope, previous, state.done)

    def _stop(self, state: ScriptState) -> None:
        if state.scope is not None:
            state.scope.cancel()
            state.scope = None

    async def watch_peers(self) -> None:
        """Re-decide the scripts that may run on any node when the live peers change."""
        while True:
            await trio.sleep(PEER_CHECK)
            live = self.node.live_nodes()
            if live != self._decided_on:
                self._decided_on = live
                log.info("node %s: live nodes now %s", self.node.name, ", ".join(sorted(live)))
                for state in list(self.scripts.values()):
                    self.reconcile(state)

    # --- error records ---------------------------------------------------------

    async def record_error(self, state: ScriptState, message: str, details: str) -> None:
        """Store (or count on) this node's error record of *state*'s script."""
        path = error_path(state.name, self.node.name)
        now = time.time_ns()
        old = await self.node.read(partial(self.node.kv.value, path))
        same_version = isinstance(old, dict) and old.get("version") == state.version
        count = (old.get("count", 0) if same_version and old else 0) + 1
        record: dict[str, Any] = {
            "path": str(script_path(state.name)),
            "script": state.name,
            "node": self.node.name,
            "version": state.version,
            "message": message,
            "traceback": details[-TRACEBACK_CHARS:],
            "count": count,
            "first": old.get("first", now) if same_version and old else now,
            "last": now,
        }
        state.errors = count
        await self._write(Change(path, record, source=ERROR_SOURCE))

    async def _clear_errors(self, name: str) -> None:
        """A new version starts with no errors: drop this node's record of the old one."""
        path = error_path(name, self.node.name)
        state = self.scripts.get(name)
        old = await self.node.read(partial(self.node.kv.value, path))
        if old is not None and state is not None and old.get("version") != state.version:
            await self._write(Change.delete(path, source=ERROR_SOURCE))

    async def _write(self, change: Change) -> None:
        try:
            await self.node.write(change)
        except MoatLogError as exc:  # a full disk, a stopping node: the log says it
            log.warning("node %s: cannot record %s: %s", self.node.name, change.path, exc)


class _Instance:
    """One run of one version of a script on this node, restarted after errors."""

    def __init__(
        self, supervisor: ScriptSupervisor, state: ScriptState, entry: ScriptEntry, after: int
    ) -> None:
        self.supervisor = supervisor
        self.node = supervisor.node
        self.state = state
        self.entry = entry
        #: Triggers are the changes stored after this position.
        self.after = after

    async def supervise(
        self, scope: trio.CancelScope, previous: trio.Event, done: trio.Event
    ) -> None:
        """Run until cancelled, once the instance of the version before has stopped."""
        state, run = self.state, self.entry.run
        wait = run.retry
        try:
            with scope:
                await previous.wait()  # never two versions at once
                while True:
                    self._set(state="starting", starts=state.starts + 1)
                    try:
                        await self._run()
                    except Exception as exc:  # the script's error: recorded, never the node's
                        message = f"{type(exc).__name__}: {exc}"
                        self._set(state="backing-off", last_error=message)
                        log.warning(
                            "script %s failed (%s); again in %g s", state.name, message, wait
                        )
                        await self.supervisor.record_error(state, message, _traceback(exc))
                        self.supervisor.changed()
                        await trio.sleep(wait)
                        wait = min(wait * 2, run.retry_max)
                        continue
                    self._set(state="done")
                    await trio.sleep_forever()  # only on_start, and it returned
        finally:
            done.set()
            if state.scope is scope:
                state.scope = None
                state.state = self.supervisor._idle_state(state) if state.entry else "deleted"
                self.supervisor.changed()

    def _set(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self.state, key, value)
        self.state.since = time.time()
        self.supervisor.changed()

    async def _run(self) -> None:
        entry, node = self.entry, self.node
        main = load_main(entry)
        user, permission = _permission(node, entry)
        async with open_client_on(node.connect_in_process()) as client:
            script = ScriptContext(
                entry.name, node.name, entry.params, client, user=user, permission=permission
            )
            self._set(state="running")
            if entry.run.on_start:
                await self._call(main, script, "start", None)
            if not (entry.run.on_change or entry.run.every):
                return
            send, receive = trio.open_memory_channel[tuple[str, Event | None, int]](0)
            async with trio.open_nursery() as triggers:
                if entry.run.on_change:
                    triggers.start_soon(self._changes, send.clone())
                if entry.run.every:
                    triggers.start_soon(self._ticks, send.clone(), entry.run.every)
                send.close()
                async for reason, event, position in receive:
                    # after a failure the next instance goes on after this trigger
                    self.after = max(self.after, position)
                    await self._call(main, script, reason, event)
                    self.supervisor.changed()

    async def _call(
        self,
        main: Callable[[ScriptContext], Awaitable[object]],
        script: ScriptContext,
        reason: str,
        trigger: Event | None,
    ) -> None:
        script.reason, script.trigger = reason, trigger
        self.state.calls += 1
        self.supervisor.changed()
        await main(script)

    async def _changes(self, send: trio.MemorySendChannel[tuple[str, Event | None, int]]) -> None:
        """Every new winner under the run entry's paths, but the script's own writes."""
        paths = self.entry.run.on_change
        own = f"script:{self.entry.name}"
        prefix = _common_prefix(paths)
        feed = self.node.feed
        async with send:
            with feed.subscribe(
                after=self.after, prefix=prefix, on_overflow=Overflow.CATCH_UP
            ) as new:
                while True:
                    for item in await new.receive_batch():
                        event = item.event
                        if (
                            item.winner
                            and event.source != own
                            and any(path.is_prefix_of(event.path) for path in paths)
                        ):
                            await send.send(("change", event, item.position))
                        else:
                            self.after = max(self.after, item.position)

    async def _ticks(
        self, send: trio.MemorySendChannel[tuple[str, Event | None, int]], every: float
    ) -> None:
        async with send:
            while True:
                await trio.sleep(every)
                await send.send(("timer", None, 0))


def load_main(entry: ScriptEntry) -> Callable[[ScriptContext], Awaitable[object]]:
    """Run the code in a fresh module namespace; its ``main``."""
    namespace: dict[str, Any] = {
        "__name__": f"moat_log_script_{entry.name.replace('-', '_')}",
        "__builtins__": builtins,
    }
    assert entry.code is not None
    # tracebacks show the script's lines (its code is in no file)
    filename = entry.code.co_filename
    linecache.cache[filename] = (len(entry.source), None, entry.source.splitlines(True), filename)
    exec(entry.code, namespace)
    main = namespace.get("main")
    if not callable(main):
        raise ScriptEntryError(f"script {entry.name}: its code defines no main")
    return main  # type: ignore[no-any-return]


def _permission(node: Node, entry: ScriptEntry) -> tuple[str | None, Any]:
    """The run entry's user and its permission check (None, None: a local client's rights)."""
    name = entry.run.user
    if name is None:
        return None, None
    account = node.config.users.get(name)
    if account is None:
        raise ScriptEntryError(
            f"script {entry.name} runs as {name}, who is not a user of node {node.name} "
            "([client.users] in its config)"
        )
    for path in entry.run.on_change:
        if not account.may("read", path):
            raise ScriptEntryError(f"script {entry.name} runs as {name}, who may not read {path}")
    return name, account.may


def _common_prefix(paths: tuple[Path, ...]) -> Path:
    first = paths[0]
    length = len(first)
    for path in paths[1:]:
        length = min(length, len(path))
        for index in range(length):
            if path[index] != first[index]:
                length = index
                break
    return first[:length]


def _traceback(exc: BaseException) -> str:
    lines = traceback.format_exception(exc)
    # the frames of the script (and what it called), not those of the runner
    return "".join(line for line in lines if "moat_log/scripts/runner.py" not in line)


async def run_scripts(
    node: Node, *, task_status: trio.TaskStatus[ScriptSupervisor] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the node's scripts until cancelled; reports the supervisor once they are started."""
    position, events = await node.read(partial(node.kv.snapshot, [SCRIPTS], deleted=True))
    async with trio.open_nursery() as nursery:
        supervisor = ScriptSupervisor(node, nursery)
        for event in events:
            supervisor.apply(event, position)
        node.scripts = supervisor
        if supervisor.scripts:
            log.info("node %s: %d scripts", node.name, len(supervisor.scripts))
        nursery.start_soon(supervisor.watch_peers)
        with node.feed.subscribe(
            after=position, prefix=SCRIPTS, on_overflow=Overflow.CATCH_UP
        ) as feed:
            task_status.started(supervisor)
            while True:
                for item in await feed.receive_batch():
                    supervisor.apply(item.event, item.position)
