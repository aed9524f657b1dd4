"""The hex examples of docs/satellite-protocol.md section 6 are what satproto builds and reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from moat_log.firmware import satproto

DOC = Path(__file__).resolve().parents[2] / "docs" / "satellite-protocol.md"
BLOCK = re.compile(r"```frame\n# (\w+): (.*)\n([0-9a-f \n]+?)\n```")


def _examples() -> list[tuple[str, Any, bytes]]:
    text = DOC.read_text()
    return [
        (name, json.loads(message), bytes.fromhex(hexed))
        for name, message, hexed in BLOCK.findall(text)
    ]


EXAMPLES = _examples()


def test_the_doc_has_an_example_of_every_kind_and_a_two_byte_length() -> None:
    assert {name for name, _, _ in EXAMPLES} == set(satproto.KIND_NAMES.values())
    assert any(frame[1] & 0x80 for _, _, frame in EXAMPLES)
    assert len(EXAMPLES) == DOC.read_text().count("```frame")


@pytest.mark.parametrize(("name", "message", "frame"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_an_example_is_the_frame_of_its_message(name: str, message: Any, frame: bytes) -> None:
    assert satproto.KIND_NAMES[message[0]] == name
    assert satproto.frame(satproto.pack(message)) == frame
    items = satproto.FrameReader().feed(frame, 0)
    assert len(items) == 1
    is_frame, payload = items[0]
    assert is_frame
    assert satproto.message(payload) == message


def test_the_byte_by_byte_hello_is_the_first_example() -> None:
    text = DOC.read_text()
    annotated = text.split("byte by byte:", 1)[1].split("```frame", 1)[0]
    columns = [line.split("  ")[0].strip() for line in annotated.splitlines()]
    hexed = " ".join(
        column for column in columns if re.fullmatch(r"[0-9a-f]{2}( [0-9a-f]{2})*", column)
    )
    assert bytes.fromhex(hexed) == EXAMPLES[0][2]
