"""Records benchmark: reading wire records and config, against plain msgpack.unpackb.

    python tools/bench/records.py [--quick] [--json]

For each representative record the time to decode and validate it, as a
ratio to ``msgpack.unpackb`` of the same bytes measured in the same run
(1.0: validation is free; the hand-written readers cost 2-3):

event       a packed bus event (journal.realistic_changes): `Event.unpack`
            (msgpack + validation in Python) against `decode_event` (msgspec
            types it in C, Python checks names, path and value)
push event  the same event already unpacked inside a sync push:
            `Event.from_msgpack` against `event_from_wire`
set         a client ``set`` request: `parse_request` (hand-written) against
            a msgspec Struct of the same shape (what a port would give)
config      a node config with users and ``[sync]``: `config_from_document`
            (reads through `moat_log.records`), per document, against
            unpackb of the document packed as msgpack (config is read once
            at start, so this only shows the reader costs nothing to speak of)

Best of several runs each in CPU time, the garbage collector off while
timing; the machines are noisy, compare the ratios.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import msgpack
import msgspec

sys.path.insert(0, str(FsPath(__file__).parent))

from journal import realistic_changes, scratch_dir
from moat_log.event import Event
from moat_log.event_decoder import decode_event, event_from_wire
from moat_log.journal.store import Journal
from moat_log.node.config import config_from_document
from moat_log.protocol.messages import parse_request

SECRET = "a cluster secret of some length"
VERIFIER = "token$" + base64.b64encode(bytes(32)).decode()


def best_seconds(work: Callable[[], object], repeat: int) -> float:
    """The fastest of *repeat* runs, the collector off: the records decoded would
    otherwise be rescanned by it, and the figures would measure the harness."""
    best = float("inf")
    for _ in range(repeat):
        gc.disable()
        try:
            start = time.process_time()  # CPU time: the machine is shared
            work()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
            gc.collect()
    return best


def packed_events(count: int) -> list[bytes]:
    with scratch_dir() as d, Journal.create(d, "bench") as journal:
        changes = realistic_changes(count)
        for i in range(0, count, 10_000):
            journal.write_batch(changes[i : i + 10_000])
        return [bytes(data) for _, data in journal.scan_raw()]


class _SetRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: int
    op: str
    path: list[str | int]
    value: Any


def config_document() -> dict[str, Any]:
    users = {f"user{i}": {"verifier": VERIFIER, "read": [":"], "write": ["home"]} for i in range(8)}
    return {
        "node": "pi1",
        "data_dir": "/var/lib/moat-log",
        "client": {"listen": ["unix", "127.0.0.1:27586"], "users": users, "max_connections": 64},
        "sync": {"listen": "0.0.0.0:27600", "peers": ["pi2:27600", "pi3"], "secret": SECRET},
    }


def measure(count: int, repeat: int) -> dict[str, dict[str, float]]:
    packed = packed_events(count)
    unpacked = [msgpack.unpackb(data) for data in packed]
    sets = [
        msgpack.packb({"id": i, "op": "set", "path": fields[5], "value": fields[7]})
        for i, fields in enumerate(unpacked, start=1)
    ]
    document = config_document()
    documents = [msgpack.packb(document)] * max(1, count // 100)
    gc.collect()
    gc.freeze()

    def unpack_all(items: list[bytes]) -> Callable[[], object]:
        return lambda: [msgpack.unpackb(data) for data in items]

    set_decoder = msgspec.msgpack.Decoder(_SetRequest)
    runs: dict[str, tuple[Callable[[], object], dict[str, Callable[[], object]], int]] = {
        "event": (
            unpack_all(packed),
            {
                "Event.unpack": lambda: [Event.unpack(data) for data in packed],
                "decode_event": lambda: [decode_event(data) for data in packed],
            },
            len(packed),
        ),
        "push event": (
            unpack_all(packed),
            {
                "Event.from_msgpack": lambda: [Event.from_msgpack(f) for f in unpacked],
                "event_from_wire": lambda: [event_from_wire(f) for f in unpacked],
            },
            len(packed),
        ),
        "set": (
            unpack_all(sets),
            {
                "parse_request": lambda: [parse_request(msgpack.unpackb(data)) for data in sets],
                "msgspec Struct": lambda: [set_decoder.decode(data) for data in sets],
            },
            len(sets),
        ),
        "config": (
            unpack_all(documents),
            {
                "config_from_document": lambda: [
                    config_from_document(msgpack.unpackb(data)) for data in documents
                ],
            },
            len(documents),
        ),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (baseline, readers, records) in runs.items():
        base = best_seconds(baseline, repeat)
        figures = {"unpackb_us": base / records * 1e6}
        for reader, work in readers.items():
            seconds = best_seconds(work, repeat)
            figures[f"{reader}_us"] = seconds / records * 1e6
            figures[f"{reader}_ratio"] = seconds / base
        out[name] = figures
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer records and runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    count, repeat = (10_000, 3) if args.quick else (20_000, 9)
    out = measure(count, repeat)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"moat-log records benchmark: {count:,} records, best of {repeat}")
    for name, figures in out.items():
        print(f"{name:<11} msgpack.unpackb {figures['unpackb_us']:6.2f} us")
        for key, value in figures.items():
            if key.endswith("_ratio"):
                reader = key.removesuffix("_ratio")
                print(
                    f"{'':<11} {reader:<21} {figures[reader + '_us']:6.2f} us"
                    f"   ratio to unpackb {value:5.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
