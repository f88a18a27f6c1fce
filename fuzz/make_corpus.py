"""Write the fuzz seed corpus (`fuzz/corpus/`) from the official WeChat test vectors.

Run `python -m fuzz.make_corpus`; the files are committed, so this runs again only when the vectors
or the input layout of `fuzz_webhook` change. Each seed is one byte naming the input kind, then the
payload (see `fuzz_webhook`). The ToUserName of every message vector is set to the fuzz stack's
original id, so the seeds reach the message model instead of stopping at `wrong_recipient`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fuzz.fuzz_webhook import (
    KIND_BASE64_BODY,
    KIND_ENCRYPT_VALUE,
    KIND_INNER_XML,
    KIND_PLAIN_BODY,
    KIND_SAFE_BODY,
    ORIGINAL_ID,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "fixtures" / "wechat_test_vectors.json"
CORPUS = Path(__file__).resolve().parent / "corpus"

_TO_USER = re.compile(r"<ToUserName><!\[CDATA\[[^\]]*\]\]></ToUserName>")


def _addressed(xml: str) -> str:
    return _TO_USER.sub(f"<ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>", xml)


def seeds(vectors: dict[str, dict[str, str]]) -> list[bytes]:
    """Return the seeds: every message vector in every kind, and every ciphertext as an Encrypt value."""
    messages = [
        _addressed(value)
        for vector in vectors.values()
        for name, value in vector.items()
        if name in {"plaintext", "msg2", "m_plain", "e_plain"}
    ]
    ciphertexts = [
        value
        for vector in vectors.values()
        for name, value in vector.items()
        if name in {"encrypt", "enc1", "enc2", "m_encrypt", "e_encrypt", "reply_encrypt", "v_echostr"}
    ]
    found: list[bytes] = []
    for xml in messages:
        data = xml.encode("utf-8")
        found += [bytes([kind]) + data for kind in (KIND_PLAIN_BODY, KIND_INNER_XML, KIND_BASE64_BODY)]
    for encrypt in ciphertexts:
        found.append(bytes([KIND_ENCRYPT_VALUE]) + encrypt.encode("ascii"))
        envelope = f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        found.append(bytes([KIND_SAFE_BODY]) + envelope.encode("ascii"))
    return found


def main() -> None:
    vectors = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    CORPUS.mkdir(exist_ok=True)
    for seed in seeds(vectors):
        # Named by content, as libFuzzer names the inputs it adds, so reruns do not duplicate seeds.
        (CORPUS / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)  # noqa: S324


if __name__ == "__main__":
    main()
