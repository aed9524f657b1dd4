"""``moat-log make-verifier``: a verifier made on the command line lets its user log in."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

from cli_support import Script
from node_process import serving, write_config

from moat_log.testing import short_temp_dir


def test_a_verifier_from_the_cli_logs_its_user_in_and_no_one_else(script: Script) -> None:
    line = script.run("make-verifier", stdin="correct horse\n").strip()
    assert line.startswith('verifier = "scram-scrypt$')
    made = json.loads(script.run("--json", "make-verifier", "--token"))
    assert made["verifier"].startswith("token$")
    with short_temp_dir() as base:
        users = f'[client.users.alice]\n{line}\nread = [":"]\nwrite = [":"]\n'
        users += f'[client.users.robot]\nverifier = "{made["verifier"]}"\nread = [":"]\n'
        config = write_config(
            base / "node.toml", base / "data", listen='["127.0.0.1:0"]', users=users
        )
        with serving(config) as node:
            at = ("--connect", node.tcp)
            alice = {"MOAT_LOG_PASSWORD": "correct horse"}
            script.run(*at, "--user", "alice", "set", "home.x", "1", env=alice)
            robot = {"MOAT_LOG_TOKEN": made["token"]}
            assert (
                json.loads(
                    script.run(*at, "--user", "robot", "--json", "get", "home.x", env=robot)
                )["value"]
                == 1
            )
            wrong = {"MOAT_LOG_PASSWORD": "correct horse battery"}
            error = script.error(*at, "--user", "alice", "get", "home.x", env=wrong)
            assert "auth-failed" in error


def test_an_empty_password_is_refused(script: Script, tmp_path: FsPath) -> None:
    assert script.error("make-verifier", stdin="") == (
        "moat-log: error: standard input: no password (its first line is empty)"
    )
    empty = tmp_path / "pw"
    empty.write_text("\n")
    assert script.error("make-verifier", "--from-file", str(empty)) == (
        f"moat-log: error: {empty}: no password (its first line is empty)"
    )
