"""Replays the fuzz seed corpus (and the fuzzer's findings) through the fuzz target, without atheris.

`fuzz/fuzz_webhook.check_one` asserts the webhook's invariants itself. These tests run it on every
seed in `fuzz/corpus/` and on inputs at the edges of the target's own decoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz import fuzz_webhook
from fuzz.fuzz_webhook import (
    KIND_ENCRYPT_VALUE,
    KIND_INNER_XML,
    KIND_PLAIN_BODY,
    KIND_SAFE_BODY,
    check_one,
)
from fuzz.make_corpus import seeds
from tests.unit.webhook_support import VECTORS

CORPUS = Path(fuzz_webhook.__file__).resolve().parent / "corpus"
SEEDS = sorted(CORPUS.iterdir())


@pytest.fixture(autouse=True)
def pinned_clock() -> Iterator[None]:
    original = fuzz_webhook.pin_clock()
    yield
    fuzz_webhook.clock.now = original


def test_fuzz_corpus_is_built_from_every_vector() -> None:
    # GIVEN the seeds make_corpus derives from the test vectors
    expected = set(seeds(VECTORS))

    # WHEN the committed corpus is read
    committed = {path.read_bytes() for path in SEEDS}

    # THEN every derived seed is committed
    assert expected <= committed


@pytest.mark.parametrize("path", SEEDS, ids=lambda path: path.name[:16])
def test_fuzz_seed_holds_the_invariants(path: Path) -> None:
    # GIVEN one seed
    data = path.read_bytes()

    # WHEN it runs through the fuzz target
    reason = check_one(data)

    # THEN the target returns an outcome's reason (check_one raises on any broken invariant)
    assert reason


def test_fuzz_vector_v3_reaches_the_message_model() -> None:
    # GIVEN the official V3 plaintext as the decrypted message of a safe-mode push
    data = bytes([KIND_INNER_XML]) + VECTORS["V3"]["plaintext"].encode()

    # WHEN it runs through the fuzz target
    reason = check_one(data)

    # THEN it is queued as an unknown event (debug_demo), so seeds reach the deepest stage
    assert reason == "unknown_type"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([KIND_PLAIN_BODY]), "empty_body"),
        (b"", "empty_body"),
        (bytes([KIND_ENCRYPT_VALUE]) + b"\xff\xfe", "decrypt_failed"),
        (bytes([KIND_SAFE_BODY]) + b"<xml><Encrypt>\xff</Encrypt></xml>", "decrypt_failed"),
        (bytes([KIND_INNER_XML]) + b"\xed\xa0\x80", "xml_root_not_xml"),
    ],
    ids=["kind-only", "empty-input", "non-ascii-encrypt", "latin-1-envelope", "surrogate-inner"],
)
def test_fuzz_target_edge_inputs(data: bytes, reason: str) -> None:
    # GIVEN an input at the edge of the target's own decoding

    # WHEN it runs through the fuzz target
    found = check_one(data)

    # THEN the webhook refuses it with the expected reason
    assert found == reason
