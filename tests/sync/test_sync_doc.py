"""docs/sync-protocol.md says what the code does: frames, test vector, tables.

Each example frame is a fenced block after a ``<!-- frame: NAME -->``
marker; its bytes are every leading two-digit hex token of each line (the
rest of the line is annotation).  The frames are produced here by real
connections, so the document shows what goes on the wire.  The test vector
blocks (``<!-- vector: NAME -->``) are recomputed from the secret and nonces
they name.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
from pathlib import Path as FsPath
from typing import Final

import pytest
from sync_support import (
    NONCE_A,
    NONCE_B,
    OTHER_SECRET,
    SECRET,
    events_of,
    fixed_random,
    handshake,
    lookup_of_tips,
)

from moat_log.idset import IdSet
from moat_log.protocol import RemoteProtocolError
from moat_log.sync import (
    MAX_BATCH_CONTENT,
    MAX_FRAME_SIZE,
    MAX_WANT_EVENTS,
    MAX_WANTS_IN_FLIGHT,
    EventsReceived,
    EventsWanted,
    GoodbyeReason,
    Holdings,
    PeerHas,
    SyncConnection,
)
from moat_log.sync.auth import auth_key, auth_message, make_proof
from moat_log.sync.messages import (
    MAX_MESSAGE_CHARS,
    Batch,
    Goodbye,
    Have,
    Hello,
    Proof,
    Push,
    Summary,
    Want,
    encode,
)
from moat_log.testing import DOC_EVENT, documented_blocks, documented_frames, hex_dump_bytes

DOC = FsPath(__file__).resolve().parents[2] / "docs" / "sync-protocol.md"
TEXT = DOC.read_text()
FRAMES = documented_frames(TEXT)
VECTORS = documented_blocks(TEXT, "vector")
EVENT = DOC_EVENT


#: The hlcs of the last events of the summary's example.
TIPS: Final = {"pi1": (500, 1_795_000_000_000_000_000), "pi2": (40, 1_795_000_000_000_000_001)}


def connection(node: str, held: IdSet, *, secret: bytes = SECRET) -> SyncConnection:
    nonce = NONCE_A if node == "pi1" else NONCE_B
    holdings = Holdings(held, lookup=lookup_of_tips(TIPS))
    # The frames of version 1 as first specified: neither hello says 'compaction'.
    return SyncConnection(node, secret, holdings, random=fixed_random(nonce), compaction=False)


def pi1_and_pi2(pi1_held: IdSet, pi2_held: IdSet) -> tuple[SyncConnection, SyncConnection]:
    return connection("pi1", pi1_held), connection("pi2", pi2_held)


def test_every_documented_frame_is_checked() -> None:
    assert set(FRAMES) == {
        "hello", "auth", "summary", "want", "batch", "push", "have", "goodbye",
        "hello-compaction", "summary-gone",
    }  # fmt: skip
    assert set(VECTORS) == {"keys", "auth-message"}


# --- the handshake ----------------------------------------------------------------------


def test_the_hello_and_the_proof_are_what_pi1_sends() -> None:
    pi1, pi2 = pi1_and_pi2(IdSet(), IdSet())
    assert pi1.data_to_send() == FRAMES["hello"] == encode(Hello(1, "pi1", NONCE_A))
    pi1.receive_data(pi2.data_to_send())
    events_of(pi1)
    assert pi1.data_to_send() == FRAMES["auth"]


def test_the_summary_is_what_a_node_holding_those_events_sends() -> None:
    held = IdSet.parse("pi1:1-500 pi2:1-20,22-40")
    pi1, pi2 = pi1_and_pi2(held, IdSet())
    pi2.receive_data(pi1.data_to_send())
    events_of(pi2)  # pi2 answers with its proof
    pi1.receive_data(pi2.data_to_send())
    events_of(pi1)  # pi1 proves itself and, the peer's proof being right, sends its summary
    assert pi1.data_to_send() == FRAMES["auth"] + FRAMES["summary"]
    assert FRAMES["summary"] == encode(Summary(held, TIPS))


def test_the_want_batch_and_push_are_what_the_nodes_send() -> None:
    pi1, pi2 = pi1_and_pi2(IdSet.parse("pi1:1-3"), IdSet.parse("pi1:1-2"))
    handshake(pi1, pi2)
    assert pi2.data_to_send() == FRAMES["want"]
    pi1.receive_data(FRAMES["want"])
    (wanted,) = events_of(pi1)
    assert wanted == EventsWanted(1, IdSet.parse("pi1:3"))
    pi1.send_batch(1, [EVENT])
    assert pi1.data_to_send() == FRAMES["batch"]
    pi2.receive_data(FRAMES["batch"])
    assert events_of(pi2) == [EventsReceived((EVENT,), 1)]

    pi1, pi2 = pi1_and_pi2(IdSet.parse("pi1:1-2"), IdSet.parse("pi1:1-2"))
    handshake(pi1, pi2)
    assert pi1.push([EVENT]) == 1
    assert pi1.data_to_send() == FRAMES["push"] == encode(Push((EVENT,)))
    pi2.receive_data(FRAMES["push"])
    assert events_of(pi2) == [EventsReceived((EVENT,), None)]


def test_the_have_is_what_a_node_sends_a_shipper_that_asked() -> None:
    shipper = SyncConnection(
        "pi2", SECRET, Holdings(IdSet.parse("pi1:1-3")), random=fixed_random(NONCE_B),
        ask_have=True,
    )  # fmt: skip
    pi1 = connection("pi1", IdSet.parse("pi1:1-3"))
    handshake(pi1, shipper)
    assert pi1.data_to_send() == FRAMES["have"] == encode(Have(IdSet.parse("pi1:1-3")))
    shipper.receive_data(FRAMES["have"])
    assert events_of(shipper) == [PeerHas(IdSet.parse("pi1:1-3"))]


def test_a_compacting_node_says_so_in_its_hello_and_names_its_gone_ids() -> None:
    held, gone = IdSet.parse("pi1:1-500"), IdSet.parse("pi1:1-400")
    tips = {"pi1": TIPS["pi1"]}

    def compacting(node: str, held: IdSet, gone: IdSet) -> SyncConnection:
        holdings = Holdings(held, lookup=lookup_of_tips(tips), gone=lambda: gone)
        nonce = NONCE_A if node == "pi1" else NONCE_B
        return SyncConnection(node, SECRET, holdings, random=fixed_random(nonce))

    pi1, pi2 = compacting("pi1", held, gone), compacting("pi2", IdSet(), IdSet())
    hello = pi1.data_to_send()
    assert hello == FRAMES["hello-compaction"]
    pi2.receive_data(hello)
    events_of(pi2)
    pi1.receive_data(pi2.data_to_send())  # its hello and proof
    events_of(pi1)
    proof_and_summary = pi1.data_to_send()
    assert proof_and_summary.endswith(FRAMES["summary-gone"])
    assert FRAMES["summary-gone"] == encode(Summary(held, tips, gone))
    pi2.receive_data(proof_and_summary)
    events_of(pi2)
    assert pi2.live
    assert pi2.wanted == IdSet.parse("pi1:401-500"), "gone ids are not asked for"


def test_the_goodbye_is_what_pi1_sends_to_a_node_with_another_secret() -> None:
    pi1 = connection("pi1", IdSet())
    pi2 = connection("pi2", IdSet(), secret=OTHER_SECRET)
    pi2.receive_data(pi1.data_to_send())
    events_of(pi2)
    pi1.receive_data(pi2.data_to_send())
    with pytest.raises(RemoteProtocolError):
        events_of(pi1)
    assert pi1.data_to_send() == FRAMES["auth"] + FRAMES["goodbye"]


# --- the test vector --------------------------------------------------------------------------


def test_the_test_vector() -> None:
    assert SECRET == b"correct horse battery staple 42!"
    values = dict(line.rsplit(maxsplit=1) for line in VECTORS["keys"].splitlines())
    assert values["PRK"] == hmac.digest(b"moat-log sync", SECRET, "sha256").hex()
    key = auth_key(SECRET)
    assert values["AuthKey"] == key.hex()
    pi1_to_pi2 = auth_message(
        prover="pi1", prover_nonce=NONCE_A, verifier="pi2", verifier_nonce=NONCE_B
    )
    pi2_to_pi1 = auth_message(
        prover="pi2", prover_nonce=NONCE_B, verifier="pi1", verifier_nonce=NONCE_A
    )
    assert hex_dump_bytes(VECTORS["auth-message"]) == pi1_to_pi2
    assert len(pi1_to_pi2) == 113
    assert values["Proof pi1->pi2"] == make_proof(key, pi1_to_pi2).hex()
    assert values["Proof pi2->pi1"] == make_proof(key, pi2_to_pi1).hex()
    assert FRAMES["auth"][-32:] == make_proof(key, pi1_to_pi2)


# --- the tables ---------------------------------------------------------------------------


def table_rows(heading: str) -> list[list[str]]:
    """The rows of the first table after *heading*, cells stripped, header row dropped."""
    section = TEXT.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_the_message_table_names_every_type_with_its_keys() -> None:
    documented = {}
    for type_cell, keys_cell, _ in table_rows("## Messages"):
        name = re.search(r"`(\w+)`", type_cell)
        assert name is not None
        documented[name[1]] = re.findall(r"`(\w+)`", keys_cell)
    classes = (Hello, Proof, Summary, Want, Batch, Push, Have, Goodbye)
    assert documented == {
        cls.TYPE: [field.name for field in dataclasses.fields(cls)] for cls in classes
    }


def test_the_goodbye_reasons_are_the_code_s() -> None:
    section = TEXT.split("| reason | meaning |", 1)[1]
    reasons = []
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            break
        reasons.append(line.split("|")[1].strip().strip("`"))
    assert reasons == [str(reason) for reason in GoodbyeReason]


def test_the_limits_are_the_code_s() -> None:
    limits = {what: limit for what, limit in table_rows("## Limits")}
    assert limits["frame body"].startswith(f"4 MiB ({MAX_FRAME_SIZE:,} bytes)")
    assert limits["events per want"] == f"1 … {MAX_WANT_EVENTS:,}"
    assert limits["unanswered wants of a peer"] == str(MAX_WANTS_IN_FLIGHT)
    assert limits["batch content (`size`)"].startswith(f"1 … 2 MiB ({MAX_BATCH_CONTENT:,} bytes)")
    assert limits["goodbye message"] == f"at most {MAX_MESSAGE_CHARS:,} characters"
