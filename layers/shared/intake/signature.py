"""WeChat's SHA-1 request signatures, compared in constant time.

`signature` (URL check and every push) is the lower-case hex SHA-1 of the lexicographically sorted
[token, timestamp, nonce] joined without separator; `msg_signature` (encrypted pushes and replies)
adds the `Encrypt` value to the list. Only the values WeChat signs enter the hash: other query
parameters (openid, encrypt_type, ...) never do.
"""

from __future__ import annotations

import hashlib
import hmac


def sha1_signature(*parts: str) -> str:
    """Return WeChat's signature of `parts`: hex SHA-1 of the sorted values concatenated."""
    # SHA-1 is what the WeChat protocol specifies; it is not our choice to make.
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324


def signatures_equal(expected: str, received: str) -> bool:
    """Compare two signatures in constant time; any non-ASCII input simply does not match."""
    return hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8", "surrogatepass"))


def request_signature(token: str, timestamp: str, nonce: str) -> str:
    return sha1_signature(token, timestamp, nonce)


def message_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return sha1_signature(token, timestamp, nonce, encrypt)


def check_signature(token: str, timestamp: str, nonce: str, signature: str) -> bool:
    """Return whether `signature` is the request signature of token, timestamp and nonce."""
    return signatures_equal(request_signature(token, timestamp, nonce), signature)


def check_msg_signature(token: str, timestamp: str, nonce: str, encrypt: str, msg_signature: str) -> bool:
    """Return whether `msg_signature` signs the encrypted payload `encrypt`."""
    return signatures_equal(message_signature(token, timestamp, nonce, encrypt), msg_signature)
