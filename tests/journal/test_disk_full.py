"""A full disk is reported as StorageFullError and never harms stored data.

The journal lives on a real, tiny tmpfs mounted in a private mount namespace
(`unshare -m`), so the kernel itself says ENOSPC; the child process below
fills it, checks the journal, frees space and writes again, and reports.
"""

import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path as FsPath

import pytest

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from moat_log.errors import StorageFullError
    from moat_log.journal.change import Change
    from moat_log.journal.store import Journal
    from moat_log.journal.verify import verify_journal
    from moat_log.path import Path

    root = sys.argv[1]
    report = {"acknowledged": 0}
    journal = Journal.create(root + "/data", "pi1")
    with open(root + "/filler", "wb") as f:  # leave the journal a little room
        f.write(os.urandom(2 << 20))
    batch = 0
    try:
        while True:
            values = [Change(Path(("bulk", batch, i)), os.urandom(200)) for i in range(200)]
            journal.write_batch(values)
            report["acknowledged"] += len(values)
            batch += 1
    except StorageFullError as exc:
        report["error"] = str(exc)
    report["after_full"] = verify_journal(journal).problems
    report["held"] = len(list(journal.scan()))
    try:
        journal.append(Change(Path(("still",)), "full"))
        report["second_write"] = "accepted"
    except StorageFullError:
        report["second_write"] = "refused"
    os.remove(root + "/filler")
    journal.append(Change(Path(("after",)), "space freed"))
    report["after_free"] = verify_journal(journal).problems
    report["final"] = len(list(journal.scan()))
    journal.close()
    print(json.dumps(report))
    """
)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_full_disk_rolls_back_the_write_and_harms_nothing(tmp_path: FsPath) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    script = (
        f"mount -t tmpfs -o size=3m tmpfs {shlex.quote(str(mount))} && "
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(child))} {shlex.quote(str(mount))}"
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=False
    )
    if "mount" in done.stderr and "permission denied" in done.stderr.lower():
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["acknowledged"] > 0
    assert "disk is full" in report["error"]
    assert report["after_full"] == []
    assert report["held"] == report["acknowledged"], "every acknowledged event is still there"
    # A small write may still fit in pages the failed transaction left free.
    second = {"accepted": 1, "refused": 0}[report["second_write"]]
    assert report["after_free"] == []
    assert report["final"] == report["acknowledged"] + second + 1
