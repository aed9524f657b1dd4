"""The node's configuration: the embedded default, the TOML file, its errors."""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest
from node_support import FAST

from moat_log.defaults import default_data_dir
from moat_log.errors import ConfigError
from moat_log.node import ListenAddress, NodeConfig, load_config
from moat_log.path import Path
from moat_log.protocol import TokenVerifier, Verifier, make_token_verifier, make_verifier

VERIFIER = str(make_verifier("secret password", params=FAST))
TOKEN_VERIFIER = str(make_token_verifier("a-long-random-token"))


def write(tmp_path: FsPath, text: str) -> FsPath:
    file = tmp_path / "node.toml"
    file.write_text(text)
    return file


def test_the_embedded_default_serves_locally_without_users() -> None:
    config = load_config()
    assert config.node is None  # the journal's name, else the host name
    assert config.data_dir == default_data_dir()
    assert [str(a) for a in config.listen] == ["unix", "127.0.0.1:27586"]
    assert config.socket_path == default_data_dir() / "moat-log.sock"
    assert not config.users
    assert config.max_connections == 256
    assert config.permission(None, "set", Path.parse("home.door"))


def test_the_data_dir_argument_overrides_the_file(tmp_path: FsPath) -> None:
    file = write(tmp_path, 'data_dir = "/srv/elsewhere"\n')
    assert load_config(file, data_dir=tmp_path / "d").data_dir == tmp_path / "d"
    assert load_config(None, data_dir=tmp_path / "d").data_dir == tmp_path / "d"


def test_a_full_file(tmp_path: FsPath) -> None:
    file = write(
        tmp_path,
        f"""
node = "pi1"
data_dir = "data"

[client]
listen = ["unix", "127.0.0.1:27586", "0.0.0.0:4000", "[::]:4001", "pi1.lan"]
max_connections = 10
handshake_timeout = 2.5
watch_buffer = 50

[client.users.alice]
verifier = "{VERIFIER}"
read = [":"]
write = ["home", "sensor:3"]

[client.users.heating]
verifier = "{TOKEN_VERIFIER}"
read = ["home.heating"]
""",
    )
    config = load_config(file)
    assert config.node == "pi1"
    assert config.data_dir == tmp_path / "data"  # relative to the file
    assert [str(a) for a in config.listen] == [
        "unix",
        "127.0.0.1:27586",
        "0.0.0.0:4000",
        "[::]:4001",
        "pi1.lan:27586",
    ]
    assert (config.max_connections, config.handshake_timeout, config.watch_buffer) == (10, 2.5, 50)
    alice, heating = config.users["alice"], config.users["heating"]
    assert isinstance(alice.verifier, Verifier)
    assert isinstance(heating.verifier, TokenVerifier)
    assert alice.write == (Path(["home"]), Path(["sensor", 3]))
    assert heating.write == ()
    assert config.scrypt_params == FAST  # decoys look like the real users


def test_permissions_follow_the_prefixes(tmp_path: FsPath) -> None:
    file = write(
        tmp_path,
        f"""
[client.users.bob]
verifier = "{VERIFIER}"
read = ["home.kitchen"]
write = ["home.kitchen.light"]
""",
    )
    may = load_config(file).permission
    kitchen = Path.parse("home.kitchen")
    assert may("bob", "get", kitchen / "temp")
    assert may("bob", "watch", kitchen)
    assert not may("bob", "watch", Path(["home"]))  # the prefix must be covered whole
    assert not may("bob", "subtree", Path())
    assert may("bob", "set", kitchen / "light")
    assert not may("bob", "set", kitchen / "temp")
    assert not may("bob", "delete", kitchen)
    assert not may("mallory", "get", kitchen)
    assert may(None, "set", kitchen)  # a local connection without a user


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix", ListenAddress("unix")),
        ("127.0.0.1:0", ListenAddress("tcp", "127.0.0.1", 0)),
        ("localhost", ListenAddress("tcp", "localhost", 27586)),
        ("[::1]:9", ListenAddress("tcp", "::1", 9)),
        ("[::1]", ListenAddress("tcp", "::1", 27586)),
    ],
)
def test_listen_addresses(text: str, expected: ListenAddress) -> None:
    assert ListenAddress.parse(text) == expected
    assert expected.loopback == (text != "0.0.0.0:1")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            'client.listen = ["0.0.0.0:27586"]',
            "client.listen",
            "refusing to listen on 0.0.0.0:27586 without credentials: add [client.users]",
        ),
        ('client.listen = ["pi1.lan:1"]', "client.listen", "refusing to listen on pi1.lan:1"),
        ("client.listen = []", "client.listen", "is empty"),
        (
            'client.listen = ["::1:80"]',
            "client.listen[0]",
            "'::1:80': write an IPv6 address in brackets",
        ),
        (
            'client.listen = ["h:99999"]',
            "client.listen[0]",
            "'h:99999': the port '99999' is not a number",
        ),
        ("client.listen = [1]", "client.listen[0]", "expected a string, got 1"),
        (
            'nodes = "pi1"',
            "nodes",
            "unknown key; known keys are adapters, client, data_dir, ems, journal, node, "
            "retention, sync",
        ),
        ('journal.durability = "later"', "journal.durability", "must be 'sync' or 'batched'"),
        ("journal.durability = 1", "journal.durability", 'expected "sync" or "batched", got 1'),
        ("journal.flush_interval = 0", "journal.flush_interval", "more than 0 and at most 60"),
        ("journal.flush_interval = 61", "journal.flush_interval", "more than 0 and at most 60"),
        ('journal.flush_interval = "1s"', "journal.flush_interval", "a number of seconds"),
        ("journal.sync = true", "journal.sync", "known keys are durability, flush_interval"),
        ("journal = 1", "journal", "expected a table"),
        ("client.max_conections = 3", "client.max_conections", "unknown key"),
        ("client = 3", "client", "expected a table, got 3"),
        ("data_dir = 5", "data_dir", "expected a directory name, got 5"),
        ("client.users = { alice = 3 }", "client.users.alice", "expected a table, got 3"),
        ('client.handshake_timeout = "2"', "client.handshake_timeout", "seconds > 0, got '2'"),
        ('node = "-pi"', "node", "invalid node name"),
        ("node = 1", "node", "expected a string, got 1"),
        ("client.max_connections = 0", "client.max_connections", "expected an integer >= 1, got 0"),
        (
            "client.max_connections = true",
            "client.max_connections",
            "expected an integer, got True",
        ),
        ("client.send_timeout = 0", "client.send_timeout", "a number of seconds > 0, got 0"),
        ('[client.users."no name"]', "client.users.no name", "invalid user name"),
        ("[client.users.alice]", "client.users.alice.verifier", "is missing"),
        (
            '[client.users.alice]\nverifier = "scram-scrypt$1$2"',
            "client.users.alice.verifier",
            "a password verifier looks like",
        ),
        (
            f'[client.users.alice]\nverifier = "{VERIFIER}"\nread = ["home..x"]',
            "client.users.alice.read[0]",
            "",
        ),
        (
            f'[client.users.alice]\nverifier = "{VERIFIER}"\nwrite = "home"',
            "client.users.alice.write",
            "expected a list of paths, got 'home'",
        ),
        (
            f'[client.users.alice]\nverifier = "{VERIFIER}"\npassword = "x"',
            "client.users.alice.password",
            "unknown key",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_the_problem(
    tmp_path: FsPath, text: str, key: str, problem: str
) -> None:
    file = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(caught.value).startswith(f"{file}: {key}: "), caught.value
    assert problem in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path: FsPath) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the config file: No such"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"node\.toml: not valid TOML"):
        load_config(write(tmp_path, "node = \n"))


def test_a_config_built_in_code_is_checked_too(tmp_path: FsPath) -> None:
    with pytest.raises(ConfigError, match=r"\(embedded default\): client.listen: refusing"):
        NodeConfig(data_dir=tmp_path, listen=(ListenAddress.parse("10.0.0.1:1"),))
    with pytest.raises(ConfigError, match="longer than the 107 bytes a Unix socket path may have"):
        NodeConfig(data_dir=tmp_path / ("x" * 120))
