"""SHA-1 request signatures against WeChat's official vectors, and their constant-time comparison."""

from __future__ import annotations

import hmac

import pytest

from intake import signature
from intake.signature import (
    check_msg_signature,
    check_signature,
    message_signature,
    request_signature,
    sha1_signature,
    signatures_equal,
)
from tests.unit.webhook_support import VECTORS


@pytest.mark.parametrize("name", ["V1", "V2", "V9"])
def test_official_request_signatures(name: str) -> None:
    vector = VECTORS[name]
    assert request_signature(vector["token"], vector["timestamp"], vector["nonce"]) == vector["signature"]
    assert check_signature(vector["token"], vector["timestamp"], vector["nonce"], vector["signature"])


def test_v3_push_signatures() -> None:
    v3 = VECTORS["V3"]
    assert request_signature(v3["token"], v3["timestamp"], v3["nonce"]) == v3["signature"]
    assert message_signature(v3["token"], v3["timestamp"], v3["nonce"], v3["encrypt"]) == v3["msg_signature"]
    assert check_msg_signature(v3["token"], v3["timestamp"], v3["nonce"], v3["encrypt"], v3["msg_signature"])


@pytest.mark.parametrize("name", ["V4", "V5"])
def test_official_msg_signatures(name: str) -> None:
    vector = VECTORS[name]
    assert check_msg_signature(
        vector["token"], vector["timestamp"], vector["nonce"], vector["encrypt"], vector["msg_signature"]
    )


def test_signature_sorts_its_parts_lexicographically() -> None:
    assert sha1_signature("b", "a", "c") == sha1_signature("c", "b", "a") == sha1_signature("a", "b", "c")
    # Lexicographic, not numeric: "10" sorts before "9".
    assert sha1_signature("9", "10") == sha1_signature("10", "9")


@pytest.mark.parametrize(
    "received",
    [
        "",
        "f464b24fc39322e44b38aa78f5edd27bd144169",  # one character short
        "F464B24FC39322E44B38AA78F5EDD27BD1441696",  # upper case: WeChat sends lower case
        "f464b24fc39322e44b38aa78f5edd27bd1441697",
        "签名不是十六进制",  # non-ASCII must simply not match, not raise
        "\udcff" * 40,  # a lone surrogate, as a JSON event can carry
    ],
)
def test_wrong_signatures_do_not_match(received: str) -> None:
    v1 = VECTORS["V1"]
    assert not check_signature(v1["token"], v1["timestamp"], v1["nonce"], received)


def test_extra_values_change_the_signature() -> None:
    v1 = VECTORS["V1"]
    assert sha1_signature(v1["token"], v1["timestamp"], v1["nonce"], "openid") != v1["signature"]


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    v1 = VECTORS["V1"]
    assert check_signature(v1["token"], v1["timestamp"], v1["nonce"], v1["signature"])
    assert calls == [(v1["signature"].encode(), v1["signature"].encode())]
    assert signatures_equal("abc", "abc")
    assert not signatures_equal("abc", "abd")
