"""Properties of WeChat's SHA-1 signatures: sign/verify round trip, any change fails, constant-time compare."""

from __future__ import annotations

import hmac
import os
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake import signature
from intake.signature import (
    check_msg_signature,
    check_signature,
    message_signature,
    request_signature,
)

PROPERTY = settings(max_examples=200, deadline=None, derandomize=bool(os.environ.get("CI")))

# What WeChat sends: a Token of 3..32 letters and digits, Unix seconds, a printable nonce.
tokens = st.text(string.ascii_letters + string.digits, min_size=3, max_size=32)
timestamps = st.integers(min_value=0, max_value=10**12).map(str)
nonces = st.text(string.printable.strip(), min_size=1, max_size=128)
encrypts = st.text(string.ascii_letters + string.digits + "+/=", min_size=1, max_size=512)
HEX = "0123456789abcdef"


def flip(hex_text: str, index: int, replacement: str) -> str:
    """Return `hex_text` with the character at `index` replaced by a different hex digit."""
    current = hex_text[index]
    new = replacement if replacement != current else HEX[(HEX.index(current) + 1) % 16]
    return hex_text[:index] + new + hex_text[index + 1 :]


@PROPERTY
@given(token=tokens, timestamp=timestamps, nonce=nonces)
def test_signature_round_trip(token: str, timestamp: str, nonce: str) -> None:
    # GIVEN the signature WeChat would compute
    signed = request_signature(token, timestamp, nonce)

    # WHEN it is checked
    valid = check_signature(token, timestamp, nonce, signed)

    # THEN it verifies
    assert valid


@PROPERTY
@given(
    token=tokens,
    timestamp=timestamps,
    nonce=nonces,
    index=st.integers(0, 39),
    replacement=st.sampled_from(HEX),
)
def test_signature_any_single_character_change_fails(
    token: str, timestamp: str, nonce: str, index: int, replacement: str
) -> None:
    # GIVEN a valid signature with one hex digit changed
    tampered = flip(request_signature(token, timestamp, nonce), index, replacement)

    # WHEN it is checked
    valid = check_signature(token, timestamp, nonce, tampered)

    # THEN it does not verify
    assert not valid


@PROPERTY
@given(token=tokens, timestamp=timestamps, nonce=nonces, encrypt=encrypts, index=st.integers(0, 511))
def test_msg_signature_covers_every_character_of_encrypt(
    token: str, timestamp: str, nonce: str, encrypt: str, index: int
) -> None:
    # GIVEN a msg_signature and the same Encrypt value with one character changed
    signed = message_signature(token, timestamp, nonce, encrypt)
    position = index % len(encrypt)
    changed = encrypt[:position] + ("A" if encrypt[position] != "A" else "B") + encrypt[position + 1 :]

    # WHEN the signature is checked against both
    original_valid = check_msg_signature(token, timestamp, nonce, encrypt, signed)
    changed_valid = check_msg_signature(token, timestamp, nonce, changed, signed)

    # THEN only the original verifies
    assert original_valid
    assert not changed_valid


@PROPERTY
@given(token=tokens, timestamp=timestamps, nonce=nonces, received=st.text(max_size=64))
def test_signature_arbitrary_text_never_raises(token: str, timestamp: str, nonce: str, received: str) -> None:
    # GIVEN any received text, including non-ASCII and lone surrogates

    # WHEN it is checked as a signature
    valid = check_signature(token, timestamp, nonce, received)

    # THEN the result is a plain bool, True only for the real signature
    assert valid is (received == request_signature(token, timestamp, nonce))


@PROPERTY
@given(token=tokens, timestamp=timestamps, nonce=nonces, received=st.text(HEX, min_size=40, max_size=40))
def test_signature_compared_with_compare_digest(
    token: str, timestamp: str, nonce: str, received: str, monkeypatch_calls: list[tuple[Any, Any]]
) -> None:
    # GIVEN hmac.compare_digest wrapped to record its calls (see the fixture)
    monkeypatch_calls.clear()

    # WHEN a signature and a msg_signature are checked
    check_signature(token, timestamp, nonce, received)
    check_msg_signature(token, timestamp, nonce, "QUJD", received)

    # THEN both comparisons went through hmac.compare_digest, with the received value as one side
    assert len(monkeypatch_calls) == 2
    assert all(received.encode() in call for call in monkeypatch_calls)


@pytest.fixture(scope="module")
def monkeypatch_calls() -> Any:
    """Wrap `hmac.compare_digest` as the signature module calls it, recording each call's arguments."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def recording(left: Any, right: Any) -> bool:
        calls.append((left, right))
        return real(left, right)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signature.hmac, "compare_digest", recording)
        yield calls
