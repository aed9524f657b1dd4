"""What a stored script's ``main(script)`` gets: its parameters, its trigger, a client.

The client (`ScriptClient`) is the node's own `Client` (an in-process
connection) seen through the permissions of the user the run entry names:
a read or write of a path that user may not touch raises
`PermissionDeniedError` before anything is sent, as the node would answer a
client logged in as that user.  Every write carries ``source =
"script:NAME"`` and, unless the script passes another, ``cause`` = the id
of the event that triggered the run.

These checks keep a script to what its author meant; they are no sandbox.
The code runs in the node's process with the node's rights (it can import
anything and open any file): only people who may write ``:.moat.script``
should, and that prefix's write permission is what decides who may.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

from moat_log.client import _CAUSE, CauseLike, Client, PathLike, Stream
from moat_log.errors import PermissionDeniedError
from moat_log.event import Event, Op, Value
from moat_log.ids import EventId
from moat_log.path import Path, Segment
from moat_log.protocol import ErrorType, Written
from moat_log.reserved import is_reserved
from moat_log.write_check import WriteCheck

__all__ = ["ScriptClient", "ScriptContext"]

#: Why ``main`` was called.
REASONS: Final = ("start", "change", "timer", "run")

#: May this user ``"read"`` or ``"write"`` this path?  (None: no restriction.)
Permission = Callable[[str, Path], bool] | None


def _path(path: PathLike) -> Path:
    if isinstance(path, Path):
        return path
    return Path.parse(path) if isinstance(path, str) else Path(path)


class ScriptClient:
    """The client of a stored script: a `Client` with its user's permissions and source."""

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        user: str | None,
        permission: Permission,
        trigger: Callable[[], Event | None],
    ) -> None:
        self._client = client
        self._user = user
        self._permission = permission
        self._trigger = trigger
        #: What the script's writes carry as their source.
        self.source: Final = f"script:{name}"

    @property
    def node(self) -> str:
        return self._client.node

    @property
    def user(self) -> str | None:
        """The user whose permissions the script has (None: a local client's, all)."""
        return self._user

    def _may(self, access: str, path: PathLike) -> Path:
        checked = _path(path)
        if self._permission is not None and not self._permission(access, checked):
            raise PermissionDeniedError(
                ErrorType.PERMISSION_DENIED,
                f"the script runs as {self._user}, who may not {access} {checked}",
            )
        return checked

    def _cause(self, cause: CauseLike | None) -> CauseLike | None:
        """*cause* if given, else that of a `caused_by` block, else the trigger."""
        if cause is not None or _CAUSE.get() is not None:
            return cause  # the client applies the caused_by block's
        return self._trigger()

    def caused_by(self, cause: CauseLike) -> AbstractContextManager[EventId]:
        """The writes of this task inside the block name *cause* (`Client.caused_by`)."""
        return self._client.caused_by(cause)

    async def get(self, path: PathLike) -> Event | None:
        return await self._client.get(self._may("read", path))

    async def value(self, path: PathLike, default: Value = None) -> Value:
        return await self._client.value(self._may("read", path), default)

    async def set(
        self,
        path: PathLike,
        value: Value,
        *,
        cause: CauseLike | None = None,
        durability: str | None = None,
    ) -> Written:
        """Write *value*; ``cause`` defaults to the event that triggered this run."""
        checked = self._may("write", path)
        if self._user is not None and is_reserved(checked):
            # the node sees a local client; the rules for a logged-in writer
            # (a script stores scripts that run as its own user) apply here
            WriteCheck().check(checked, Op.SET, value, self._user)
        return await self._client.set(
            checked,
            value,
            source=self.source,
            cause=self._cause(cause),
            durability=durability,
        )

    async def delete(self, path: PathLike, *, cause: CauseLike | None = None) -> Written:
        checked = self._may("write", path)
        return await self._client.delete(checked, source=self.source, cause=self._cause(cause))

    async def list(self, path: PathLike = ()) -> list[Segment]:
        return await self._client.list(self._may("read", path))

    def subtree(self, path: PathLike = ()) -> Stream[Event]:
        return self._client.subtree(self._may("read", path))

    def history(self, path: PathLike, **options: Any) -> Stream[Event]:
        return self._client.history(self._may("read", path), **options)

    def watch(self, path: PathLike = ()) -> Stream[Any]:
        return self._client.watch(self._may("read", path))

    def log(self, *, path: PathLike = (), **options: Any) -> Any:
        return self._client.log(path=self._may("read", path), **options)

    async def status(self) -> dict[str, Any]:
        return await self._client.status()


class ScriptContext:
    """The argument of a stored script's ``main``: everything it may use.

    *trigger* is the event that caused this call (a change of one of the
    run entry's ``on_change`` paths), None at the start, on a timer, or for
    ``moat-log script run`` without ``--trigger``; *reason* says which.
    *state* is a dict the script may keep things in between calls, as long
    as this instance runs (a new version or a restart starts it empty).
    """

    def __init__(
        self,
        name: str,
        node: str,
        params: Mapping[str, Any],
        client: Client,
        *,
        user: str | None = None,
        permission: Permission = None,
    ) -> None:
        self.name: Final = name
        self.node: Final = node
        self.params: Final = dict(params)
        self.trigger: Event | None = None
        self.reason = "start"
        self.state: dict[str, Any] = {}
        self.log: Final = logging.getLogger(f"moat_log.script.{name}")
        self.client: Final = ScriptClient(
            client, name, user=user, permission=permission, trigger=lambda: self.trigger
        )
