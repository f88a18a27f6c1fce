"""The AES envelope against the official vectors, wechatpy, crafted defects and Hypothesis."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto

from intake.crypto import (
    AppIdMismatchError,
    DecryptError,
    InvalidKeyError,
    MessageCrypto,
    WeChatCryptoError,
    decode_aes_key,
    pkcs7_pad,
    pkcs7_unpad,
)
from intake.signature import message_signature
from tests.unit.webhook_support import VECTORS

V3 = VECTORS["V3"]
APP_ID = V3["appid"]
KEY = V3["key"]


def raw_decrypt(encoding_aes_key: str, encrypt: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def raw_encrypt(encoding_aes_key: str, plain: bytes) -> str:
    """Encrypt `plain` (a whole number of AES blocks, padding included) with no checks at all."""
    key = base64.b64decode(encoding_aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def envelope(message: bytes, app_id: str = APP_ID, length: int | None = None) -> bytes:
    size = len(message) if length is None else length
    return b"0123456789abcdef" + size.to_bytes(4, "big") + message + app_id.encode()


# -- official vectors ---------------------------------------------------------------------------------


def test_v3_decrypts_to_the_exact_plaintext_with_22_pad_bytes() -> None:
    raw = raw_decrypt(KEY, V3["encrypt"])
    assert raw[-1] == 22
    assert raw[-22:] == bytes([22]) * 22
    assert raw[:16] == V3["random"].encode()
    assert MessageCrypto(KEY, APP_ID).decrypt(V3["encrypt"]) == V3["plaintext"]


def test_v3_reply_reencrypts_to_the_exact_encrypt_and_msg_signature() -> None:
    encrypt = MessageCrypto(KEY, APP_ID).encrypt(V3["reply_plain"], random=V3["reply_random"].encode())
    assert encrypt == V3["reply_encrypt"]
    signature = message_signature(V3["token"], V3["reply_timestamp"], V3["reply_nonce"], encrypt)
    assert signature == V3["reply_msg_signature"]


@pytest.mark.parametrize("name", ["V4", "V5"])
def test_v4_v5_decrypt_exactly(name: str) -> None:
    vector = VECTORS[name]
    assert MessageCrypto(vector["key"], vector["appid"]).decrypt(vector["encrypt"]) == vector["plaintext"]
    assert raw_decrypt(vector["key"], vector["encrypt"])[:16] == vector["random"].encode()


@pytest.mark.parametrize(("message", "expected"), [("msg1", "enc1"), ("msg2", "enc2")])
def test_v6_encrypts_exactly_with_its_fixed_random(message: str, expected: str) -> None:
    v6 = VECTORS["V6"]
    crypto = MessageCrypto(v6["key"], v6["appid"])
    assert v6["random"] == "aaaabbbbccccdddd"
    encrypt = crypto.encrypt(v6[message], random=v6["random"].encode())
    assert encrypt == v6[expected]
    assert crypto.decrypt(encrypt) == v6[message]


@pytest.mark.parametrize("name", ["V7", "V8"])
def test_wecom_vectors_share_the_envelope(name: str) -> None:
    """WeCom's vectors use the same envelope with the CorpID as the trailing id."""
    vector = VECTORS[name]
    crypto = MessageCrypto(vector["key"], vector["receiveid"])
    assert crypto.decrypt(vector["v_echostr"]) == vector["v_plain"]
    assert crypto.decrypt(vector["m_encrypt"]) == vector["m_plain"]


def test_v8_encrypts_exactly() -> None:
    v8 = VECTORS["V8"]
    encrypt = MessageCrypto(v8["key"], v8["receiveid"]).encrypt(v8["e_plain"], random=v8["e_random"].encode())
    assert encrypt == v8["e_encrypt"]


# -- against wechatpy, an independent implementation --------------------------------------------------


def test_decrypts_what_wechatpy_encrypts() -> None:
    text = "<xml><Content><![CDATA[井盖丢失 manhole cover missing]]></Content></xml>"
    reply = WeChatCrypto(V3["token"], KEY, APP_ID).encrypt_message(text, "123", "1700000000")
    encrypt = reply.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    assert MessageCrypto(KEY, APP_ID).decrypt(encrypt) == text


def test_wechatpy_decrypts_what_we_encrypt() -> None:
    text = "<xml><Content><![CDATA[噪音 noise]]></Content></xml>"
    encrypt = MessageCrypto(KEY, APP_ID).encrypt(text)
    signature = message_signature(V3["token"], "1700000000", "42", encrypt)
    decrypted = WeChatCrypto(V3["token"], KEY, APP_ID).decrypt_message(
        {"Encrypt": encrypt}, signature, "1700000000", "42"
    )
    assert decrypted == text


def test_fresh_random_prefix_each_time() -> None:
    crypto = MessageCrypto(KEY, APP_ID)
    assert crypto.encrypt("same") != crypto.encrypt("same")


# -- keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "A" * 42,
        "A" * 44,
        "A" * 42 + "=",
        "A" * 42 + "+",
        "A" * 42 + "/",
        "A" * 42 + " ",
        "A" * 42 + "é",
        " " + "A" * 42,
    ],
)
def test_encoding_aes_key_is_validated(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        decode_aes_key(key)
    with pytest.raises(WeChatCryptoError):
        MessageCrypto(key, APP_ID)


def test_previous_key_decrypts_during_rotation() -> None:
    old_key, new_key = "B" * 43, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    from_old = MessageCrypto(old_key, APP_ID).encrypt("old")
    from_new = MessageCrypto(new_key, APP_ID).encrypt("new")
    rotating = MessageCrypto(new_key, APP_ID, previous_encoding_aes_key=old_key)
    assert rotating.decrypt_detailed(from_old) == ("old", True)
    assert rotating.decrypt_detailed(from_new) == ("new", False)
    # Encryption uses the new key only.
    assert MessageCrypto(new_key, APP_ID).decrypt(rotating.encrypt("reply")) == "reply"
    with pytest.raises(DecryptError):
        MessageCrypto(new_key, APP_ID).decrypt(from_old)


# -- crafted defects ----------------------------------------------------------------------------------


def test_another_app_id_is_refused() -> None:
    encrypt = MessageCrypto(KEY, "wx0000000000000000").encrypt("<xml/>")
    with pytest.raises(AppIdMismatchError):
        MessageCrypto(KEY, APP_ID).decrypt(encrypt)


def test_wrong_key_is_refused() -> None:
    with pytest.raises(DecryptError):
        MessageCrypto("B" * 43, APP_ID).decrypt(V3["encrypt"])


@pytest.mark.parametrize(
    "plain",
    [
        pytest.param(pkcs7_pad(envelope(b"<xml/>", length=0xFFFFFFF0)), id="absurd-length"),
        pytest.param(pkcs7_pad(envelope(b"<xml/>", length=7)), id="length-one-past-the-end"),
        pytest.param(pkcs7_pad(b"0123456789abcdef\x00\x00"), id="shorter-than-header"),
        pytest.param(envelope(b"<xml/>").ljust(63, b"x") + b"\x00", id="pad-byte-zero"),
        pytest.param(envelope(b"<xml/>").ljust(63, b"x") + b"\x21", id="pad-byte-33"),
        pytest.param(envelope(b"<xml/>").ljust(60, b"x") + b"\x04\x05\x04\x04", id="inconsistent-pad-bytes"),
        pytest.param(envelope(b"<xml/>").ljust(48, b"x") + b"\x10" * 16, id="pad-for-16-byte-blocks-only"),
        pytest.param(pkcs7_pad(envelope(b"\xff\xfe<xml/>")), id="message-not-utf8"),
    ],
)
def test_crafted_envelopes_are_refused(plain: bytes) -> None:
    encrypt = raw_encrypt(KEY, plain)
    with pytest.raises(DecryptError):
        MessageCrypto(KEY, APP_ID).decrypt(encrypt)


def test_16_byte_padding_is_a_valid_32_byte_pad() -> None:
    """A pad of 16 x 0x10 is legal under 32-byte padding when the message fills 16 bytes of the block."""
    plain = envelope(b"<xml>0123456</xml>")  # 20 + 18 + 18 = 56 bytes -> pad 8
    assert len(pkcs7_pad(plain)) % 32 == 0
    encrypt = raw_encrypt(KEY, pkcs7_pad(plain))
    assert MessageCrypto(KEY, APP_ID).decrypt(encrypt) == "<xml>0123456</xml>"


@pytest.mark.parametrize(
    "encrypt",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!not base64!!!", id="not-base64"),
        pytest.param(V3["encrypt"][:40], id="truncated"),
        pytest.param(base64.b64encode(b"\x01" * 17).decode(), id="17-bytes"),
        pytest.param(base64.b64encode(bytes(16)).decode(), id="16-zero-bytes"),
        pytest.param(base64.b64encode(bytes(32)).decode(), id="32-zero-bytes"),
        pytest.param(V3["encrypt"] + "\n", id="trailing-newline"),
        pytest.param("密文", id="non-ascii"),
        pytest.param(b"\xff\xfe", id="bytes-not-ascii"),
    ],
)
def test_malformed_ciphertext_is_refused(encrypt: str | bytes) -> None:
    with pytest.raises(DecryptError):
        MessageCrypto(KEY, APP_ID).decrypt(encrypt)


def test_pkcs7_checks_every_pad_byte() -> None:
    assert pkcs7_unpad(b"abc" + bytes([29]) * 29) == b"abc"
    assert pkcs7_pad(b"") == bytes([32]) * 32
    with pytest.raises(DecryptError):
        pkcs7_unpad(b"abc" + bytes([28]) + bytes([29]) * 28)
    with pytest.raises(DecryptError):
        pkcs7_unpad(b"")


def test_random_prefix_must_be_16_bytes() -> None:
    with pytest.raises(WeChatCryptoError):
        MessageCrypto(KEY, APP_ID).encrypt("x", random=b"short")


# -- properties ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=2000), app_id=st.from_regex(r"wx[0-9a-f]{16}", fullmatch=True))
def test_round_trip_for_arbitrary_text(text: str, app_id: str) -> None:
    crypto = MessageCrypto(KEY, app_id)
    encrypt = crypto.encrypt(text)
    assert len(base64.b64decode(encrypt)) % 32 == 0
    assert crypto.decrypt(encrypt) == text


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_as_encrypt_raise_only_our_error(data: bytes) -> None:
    crypto = MessageCrypto(KEY, APP_ID, previous_encoding_aes_key="B" * 43)
    for encrypt in (base64.b64encode(data).decode(), data):
        with contextlib.suppress(WeChatCryptoError):
            crypto.decrypt(encrypt)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_encrypt_raises_only_our_error(text: str) -> None:
    with contextlib.suppress(WeChatCryptoError):
        MessageCrypto(KEY, APP_ID).decrypt(text)


@settings(max_examples=200, deadline=None)
@given(blocks=st.integers(min_value=1, max_value=8), data=st.data())
def test_block_sized_garbage_raises_only_our_error(blocks: int, data: st.DataObject) -> None:
    """Whole AES blocks reach the unpadder and the length field, unlike most random input."""
    raw = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    with contextlib.suppress(WeChatCryptoError):
        MessageCrypto(KEY, APP_ID).decrypt(base64.b64encode(raw).decode())
