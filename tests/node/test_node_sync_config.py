"""The ``[sync]`` table: listener, peers and the cluster secret, and what is refused."""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest

from moat_log.errors import ConfigError
from moat_log.node import load_config
from moat_log.node.sync_config import PeerAddress, SyncConfig

SECRET = "a cluster secret of some length"


def write(tmp_path: FsPath, text: str) -> FsPath:
    file = tmp_path / "node.toml"
    file.write_text('node = "pi1"\ndata_dir = "data"\n' + text)
    return file


def test_no_sync_table_means_the_node_runs_alone(tmp_path: FsPath) -> None:
    assert load_config(write(tmp_path, "")).sync is None


def test_the_issue_example_with_an_inline_secret(tmp_path: FsPath) -> None:
    file = write(
        tmp_path,
        f"""
[sync]
listen = "0.0.0.0:27600"
peers = ["pi2.local:27600", "pi3.local", "[fd00::3]:27601"]
secret = "{SECRET}"
""",
    )
    sync = load_config(file).sync
    assert sync is not None
    assert sync.listen == ("0.0.0.0", 27600)
    assert sync.peers == (
        PeerAddress("pi2.local", 27600),
        PeerAddress("pi3.local", 27600),
        PeerAddress("fd00::3", 27601),
    )
    assert [str(peer) for peer in sync.peers] == [
        "pi2.local:27600",
        "pi3.local:27600",
        "[fd00::3]:27601",
    ]
    assert sync.secret == SECRET.encode()
    assert SECRET not in repr(sync)  # never in a log line by accident
    assert sync.wait_for_peers == 10
    assert sync.max_clock_ahead == 300
    assert (sync.handshake_timeout, sync.max_connections) == (10, 64)


def test_the_limits_of_strangers_are_set(tmp_path: FsPath) -> None:
    text = f'[sync]\nsecret = "{SECRET}"\nhandshake_timeout = 2.5\nmax_connections = 8\n'
    sync = load_config(write(tmp_path, text)).sync
    assert sync is not None
    assert (sync.handshake_timeout, sync.max_connections) == (2.5, 8)


def test_wait_for_peers_takes_seconds(tmp_path: FsPath) -> None:
    for text, seconds in (("0", 0.0), ("2.5", 2.5), ("600", 600.0)):
        file = write(tmp_path, f'[sync]\nsecret = "{SECRET}"\nwait_for_peers = {text}\n')
        sync = load_config(file).sync
        assert sync is not None and sync.wait_for_peers == seconds


def test_a_secret_file_relative_to_the_config(tmp_path: FsPath) -> None:
    key = tmp_path / "cluster.key"
    key.write_bytes(b"0123456789abcdef0123\n")
    key.chmod(0o600)
    sync = load_config(
        write(tmp_path, '[sync]\npeers = ["pi2"]\nsecret_file = "cluster.key"\n')
    ).sync
    assert sync == SyncConfig(b"0123456789abcdef0123", None, (PeerAddress("pi2"),))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('peers = ["pi2"]', "sync: nodes authenticate each other with a cluster secret"),
        ('secret = "short"', "the cluster secret has 5 bytes; at least 16"),
        (f'secret = "{SECRET}"\nsecret_file = "k"', "either secret or secret_file"),
        (
            f'secret = "{SECRET}"\nlisten = 27600',
            'sync.listen: expected a string like "0.0.0.0:27600", got 27600',
        ),
        (
            f'secret = "{SECRET}"\nlisten = "a:b:c"',
            "sync.listen: 'a:b:c': write an IPv6 address in brackets",
        ),
        (
            f'secret = "{SECRET}"\npeers = "pi2"',
            "sync.peers: expected a list like [\"pi2.local:27600\"], got 'pi2'",
        ),
        (
            f'secret = "{SECRET}"\npeers = ["pi2:0"]',
            "sync.peers[0]: 'pi2:0': the port '0' is not a number 1 .. 65535",
        ),
        (f'secret = "{SECRET}"\npeers = ["pi2:99999"]', "not a number 1 .. 65535"),
        (f'secret = "{SECRET}"\npeers = [3]', "sync.peers[0]: expected a string, got 3"),
        (
            f'secret = "{SECRET}"\nretry = 3',
            "sync.retry: unknown key; known keys are handshake_timeout, have_every, listen, "
            "max_clock_ahead",
        ),
        (
            f'secret = "{SECRET}"\nwait_for_peers = -1',
            "sync.wait_for_peers: expected a number of seconds 0 .. 3600, got -1",
        ),
        (
            f'secret = "{SECRET}"\nwait_for_peers = "10"',
            "sync.wait_for_peers: expected a number of seconds 0 .. 3600, got '10'",
        ),
        (
            f'secret = "{SECRET}"\nwait_for_peers = true',
            "sync.wait_for_peers: expected a number of seconds 0 .. 3600, got True",
        ),
        (
            f'secret = "{SECRET}"\nmax_clock_ahead = 0',
            "sync.max_clock_ahead: expected a number of seconds 1 .. 604800, got 0",
        ),
        (
            f'secret = "{SECRET}"\nhandshake_timeout = 0',
            "sync.handshake_timeout: expected a number of seconds 0.1 .. 3600, got 0",
        ),
        (
            f'secret = "{SECRET}"\nmax_connections = 0',
            "sync.max_connections: expected an integer 1 .. 65536, got 0",
        ),
        (
            f'secret = "{SECRET}"\nmax_connections = 2.0',
            "sync.max_connections: expected an integer 1 .. 65536, got 2.0",
        ),
        ('secret_file = "missing.key"', "cannot read"),
    ],
)
def test_mistakes_are_named(tmp_path: FsPath, table: str, message: str) -> None:
    file = write(tmp_path, f"[sync]\n{table}\n")
    with pytest.raises(ConfigError, match=r"node\.toml") as caught:
        load_config(file)
    assert message in str(caught.value)


def test_a_secret_file_others_can_read_is_refused(tmp_path: FsPath) -> None:
    key = tmp_path / "cluster.key"
    key.write_bytes(b"0123456789abcdef0123")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"can be read by others .* chmod 600"):
        load_config(write(tmp_path, '[sync]\nsecret_file = "cluster.key"\n'))
