"""``export``, ``import`` and ``verify`` in-process, and the progress bars."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
from cli_support import Invoker, write_events

from moat_log.cli import _output
from moat_log.journal import verify as verify_module
from moat_log.journal.export import MAGIC
from moat_log.journal.store import Journal
from moat_log.journal.verify import VerifyReport
from moat_log.projections import open_journal


def packed_events(data_dir: FsPath) -> dict[str, bytes]:
    with open_journal(data_dir) as journal:
        return {str(event.id): event.pack() for _, event in journal.scan()}


def exists(path: FsPath) -> bool:
    return path.exists()


@pytest.fixture
def source(journal_pi1: FsPath) -> FsPath:
    write_events(
        journal_pi1,
        ("pi1", "home.a", 1, 1),
        ("pi2", "home.b", 2, 2),
        ("pi1", "home.c", {"x": b"\x00"}, 3),
        ("pi2", "home.d", None, 4),
    )
    return journal_pi1


@pytest.fixture
def target(tmp_path: FsPath) -> Invoker:
    open_journal(tmp_path / "target", create_node="pi3").close()
    return Invoker(tmp_path / "target")


async def test_export_then_import_copies_every_event(
    invoke: Invoker, source: FsPath, target: Invoker, tmp_path: FsPath
) -> None:
    out = tmp_path / "all.mlx"
    result = await invoke("export", "-o", str(out))
    assert f"exported 4 events to {out}: " in result.stdout
    assert [line.split() for line in result.stdout.splitlines()[2:]] == [
        ["pi1", "1-2"],
        ["pi2", "1-2"],
    ]
    first = await target("import", str(out))
    assert first.stdout.strip() == (f"imported {out}: 4 events, 4 inserted, 0 already held")
    again = json.loads((await target("--json", "import", str(out))).stdout)
    assert again == {
        "file": str(out), "events": 4, "inserted": 0, "already_held": 4,
        "conflict_count": 0, "conflicts": [],
    }  # fmt: skip
    assert packed_events(target.data_dir) == packed_events(source)


@pytest.mark.parametrize(
    ("args", "ranges"),
    [
        (["--origin", "pi2"], {"pi2": "1-2"}),
        (["--since", "pi2:1"], {"pi1": "2", "pi2": "1-2"}),
        (["--until", "pi1:2"], {"pi1": "1-2", "pi2": "1"}),
        (["--since", "pi2:1", "--until", "pi1:2", "--origin", "pi1"], {"pi1": "2"}),
    ],
)
async def test_export_selection(
    *,
    invoke: Invoker,
    source: FsPath,
    target: Invoker,
    tmp_path: FsPath,
    args: list[str],
    ranges: dict[str, str],
) -> None:
    out = tmp_path / "part.mlx"
    summary = json.loads((await invoke("--json", "export", "-o", str(out), *args)).stdout)
    assert summary["ranges"] == ranges
    assert summary["bytes"] == out.stat().st_size
    assert summary["ratio"] == round(summary["bytes"] / summary["raw_bytes"], 4)
    assert len(summary["sha256"]) == 64 and summary["node"] == "pi1"
    await target("import", str(out))
    expected = {f"{o}:{s}" for o, r in ranges.items() for s in _seqs(r)}
    assert set(packed_events(target.data_dir)) == expected


def _seqs(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


async def test_export_refuses_to_overwrite(
    invoke: Invoker, source: FsPath, tmp_path: FsPath
) -> None:
    out = tmp_path / "x.mlx"
    out.write_bytes(b"precious")
    assert "x.mlx exists: pass --force" in await invoke.error("export", "-o", str(out))
    assert out.read_bytes() == b"precious"
    await invoke("export", "-o", str(out), "--force")
    assert out.read_bytes().startswith(MAGIC)


async def test_export_to_stdout(invoke: Invoker, source: FsPath) -> None:
    result = await invoke("export", "-o", "-")
    assert result.stdout_bytes.startswith(MAGIC)
    assert "exported 4 events to -" in result.stderr


async def test_import_conflicts_exit_1(invoke: Invoker, source: FsPath, tmp_path: FsPath) -> None:
    other = tmp_path / "other"
    open_journal(other, create_node="pi3").close()
    write_events(other, ("pi2", "home.b", "different", 2))
    out = tmp_path / "pi2.mlx"
    await invoke("export", "--origin", "pi2", "-o", str(out))
    result = await Invoker(other)("import", str(out), status=1)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"imported {out}: 2 events, 1 inserted, 0 already held, "
        "1 refused (held here as different events)"
    )
    assert lines[1].startswith("refused: pi2:1: ")
    assert "pi2:2" in packed_events(other)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 1]), ""),
        (lambda data: b"PK\x03\x04" + data[4:], "not a moat-log export"),
        (lambda data: b"", "not a moat-log export"),
    ],
)
async def test_import_of_a_bad_file_changes_nothing(
    *,
    invoke: Invoker,
    source: FsPath,
    target: Invoker,
    tmp_path: FsPath,
    mangle: object,
    message: str,
) -> None:
    out = tmp_path / "good.mlx"
    await invoke("export", "-o", str(out))
    bad = tmp_path / "bad.mlx"
    bad.write_bytes(mangle(out.read_bytes()))  # type: ignore[operator]
    error = await target.error("import", str(bad))
    assert str(bad) in error and message in error
    assert packed_events(target.data_dir) == {}


async def test_verify_ok(invoke: Invoker, source: FsPath) -> None:
    assert (await invoke("verify")).stdout == "OK: 4 events checked, 0 warnings\n"
    report = json.loads((await invoke("--json", "verify")).stdout)
    assert report == {"ok": True, "events": 4, "problem_count": 0, "problems": [], "warnings": []}


async def test_verify_problems_exit_1(
    invoke: Invoker, source: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(journal: Journal, *, progress: object = None) -> VerifyReport:
        report = VerifyReport(events=4, warnings=["pi2 has a gap"])
        for n in range(102):
            report.problem(f"index entry {n} is wrong")
        return report

    monkeypatch.setattr(verify_module, "verify_journal", broken)
    lines = (await invoke("verify", status=1)).stdout.splitlines()
    assert lines[0] == "warning: pi2 has a gap"
    assert lines[1] == "problem: index entry 0 is wrong"
    assert lines[-2:] == [
        "... and 2 more problems",
        "FAILED: 102 problems: 4 events checked, 1 warnings",
    ]
    report = json.loads((await invoke("--json", "verify", status=1)).stdout)
    assert report["ok"] is False and report["problem_count"] == 102


async def test_progress_only_on_a_terminal(
    invoke: Invoker, source: FsPath, tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = tmp_path / "in.jsonl"
    ingest.write_text('{"path": "z", "value": 1}\n' * 3)
    out = tmp_path / "p.mlx"
    commands = [["ingest", str(ingest)], ["export", "-o", str(out)], ["verify"]]
    for args in commands:
        assert (await invoke(*args)).stderr == ""
    out.unlink()
    monkeypatch.setattr(_output, "is_terminal", lambda stream: True)
    for args, label in zip(commands, ["ingesting", "exporting", "verifying"], strict=True):
        assert label in (await invoke(*args)).stderr
    target = tmp_path / "t2"
    open_journal(target, create_node="pi9").close()
    assert "importing" in (await Invoker(target)("import", str(out))).stderr


async def test_import_from_stdin(invoke: Invoker, source: FsPath, target: Invoker) -> None:
    exported = (await invoke("export", "-o", "-")).stdout_bytes
    runner_result = await target("import", "-", stdin=exported)
    assert "imported <stdin>: 4 events, 4 inserted" in runner_result.stdout
    assert packed_events(target.data_dir) == packed_events(source)
    error = await target.error("import", "-", stdin="garbage")
    assert error == "moat-log: error: <stdin> is not a moat-log export (bad magic)"
