"""Properties of the AES envelope: round trip for any message and AppID; every defect is a domain error."""

from __future__ import annotations

import base64
import os
import string

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from intake.crypto import (
    AppIdMismatchError,
    DecryptError,
    InvalidKeyError,
    MessageCrypto,
    WeChatCryptoError,
    decode_aes_key,
    decrypt_with_key,
    pkcs7_pad,
    pkcs7_unpad,
)

PROPERTY = settings(max_examples=200, deadline=None, derandomize=bool(os.environ.get("CI")))

aes_keys = st.text(string.ascii_letters + string.digits, min_size=43, max_size=43)
app_ids = st.text(min_size=1, max_size=64)
messages = st.text(max_size=2048)
randoms = st.binary(min_size=16, max_size=16)


def raw_envelope(message: bytes, app_id: bytes, key: bytes, random: bytes, length: int | None = None) -> str:
    """Encrypt any bytes in WeChat's layout without the module's checks (the length field may lie)."""
    size = len(message) if length is None else length
    plain = random + size.to_bytes(4, "big") + message + app_id
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()).decode()


@PROPERTY
@given(encoding_aes_key=aes_keys, app_id=app_ids, message=messages, random=randoms)
def test_crypto_round_trip(encoding_aes_key: str, app_id: str, message: str, random: bytes) -> None:
    # GIVEN any key, AppID and message text
    crypto = MessageCrypto(encoding_aes_key, app_id)

    # WHEN the message is encrypted and decrypted
    decrypted = crypto.decrypt(crypto.encrypt(message, random=random))

    # THEN it comes back unchanged
    assert decrypted == message


@PROPERTY
@given(encoding_aes_key=aes_keys, app_id=app_ids, message=st.binary(max_size=2048), random=randoms)
def test_crypto_arbitrary_bytes_decrypt_or_domain_error(
    encoding_aes_key: str, app_id: str, message: bytes, random: bytes
) -> None:
    # GIVEN an envelope around arbitrary bytes, which may not be UTF-8
    key = decode_aes_key(encoding_aes_key)
    encrypt = raw_envelope(message, app_id.encode(), key, random)

    # WHEN it is decrypted
    try:
        decrypted: str | None = decrypt_with_key(encrypt, key, app_id)
    except DecryptError:
        decrypted = None

    # THEN the text comes back exactly when the bytes are UTF-8, and a DecryptError otherwise
    try:
        expected: str | None = message.decode("utf-8")
    except UnicodeDecodeError:
        expected = None
    assert decrypted == expected


@PROPERTY
@given(first=aes_keys, second=aes_keys, app_id=app_ids, message=messages)
def test_crypto_wrong_key_never_decrypts(first: str, second: str, app_id: str, message: str) -> None:
    # GIVEN an envelope made with one key
    assume(decode_aes_key(first) != decode_aes_key(second))
    encrypt = MessageCrypto(first, app_id).encrypt(message)

    # WHEN another key decrypts it
    # THEN only the domain error is raised
    with pytest.raises(DecryptError):
        MessageCrypto(second, app_id).decrypt(encrypt)


@PROPERTY
@given(encoding_aes_key=aes_keys, ours=app_ids, theirs=app_ids, message=messages)
def test_crypto_wrong_app_id_never_decrypts(
    encoding_aes_key: str, ours: str, theirs: str, message: str
) -> None:
    # GIVEN an envelope for another AppID under our key
    assume(ours != theirs)
    encrypt = MessageCrypto(encoding_aes_key, theirs).encrypt(message)

    # WHEN we decrypt it
    # THEN it is refused as another AppID's envelope
    with pytest.raises(AppIdMismatchError):
        MessageCrypto(encoding_aes_key, ours).decrypt(encrypt)


@PROPERTY
@given(
    encoding_aes_key=aes_keys,
    app_id=app_ids,
    message=st.binary(max_size=256),
    random=randoms,
    extra=st.integers(min_value=1, max_value=2**32 - 1),
)
def test_crypto_length_field_beyond_plaintext_refused(
    encoding_aes_key: str, app_id: str, message: bytes, random: bytes, extra: int
) -> None:
    # GIVEN an envelope whose length field claims more bytes than it contains
    key = decode_aes_key(encoding_aes_key)
    claimed = min(len(message) + len(app_id.encode()) + extra, 2**32 - 1)
    encrypt = raw_envelope(message, app_id.encode(), key, random, length=claimed)

    # WHEN it is decrypted
    # THEN the domain error is raised
    with pytest.raises(DecryptError):
        decrypt_with_key(encrypt, key, app_id)


@PROPERTY
@given(encoding_aes_key=aes_keys, app_id=app_ids, encrypt=st.text(max_size=512) | st.binary(max_size=512))
def test_crypto_arbitrary_encrypt_only_domain_errors(
    encoding_aes_key: str, app_id: str, encrypt: str | bytes
) -> None:
    # GIVEN any Encrypt value, text or bytes
    crypto = MessageCrypto(encoding_aes_key, app_id)

    # WHEN it is decrypted
    try:
        result: str | Exception = crypto.decrypt(encrypt)
    except Exception as err:
        result = err

    # THEN the result is text or a WeChatCryptoError, never another exception
    assert isinstance(result, str | WeChatCryptoError), repr(result)


@PROPERTY
@given(data=st.binary(max_size=256))
def test_crypto_padding_round_trip_and_garbage(data: bytes) -> None:
    # GIVEN any bytes

    # WHEN they are padded and unpadded, and unpadded as they are
    round_trip = pkcs7_unpad(pkcs7_pad(data))
    try:
        pkcs7_unpad(data)
        garbage_error = None
    except Exception as err:
        garbage_error = err

    # THEN padding round-trips and garbage raises nothing but the domain error
    assert round_trip == data
    assert garbage_error is None or isinstance(garbage_error, DecryptError)


@PROPERTY
@given(candidate=st.text(max_size=64))
def test_crypto_arbitrary_key_text_is_invalid_key_or_32_bytes(candidate: str) -> None:
    # GIVEN any text as an EncodingAESKey

    # WHEN it is decoded
    try:
        key = decode_aes_key(candidate)
    except InvalidKeyError:
        key = None

    # THEN it is a 32-byte key exactly when it is 43 letters and digits
    valid_form = len(candidate) == 43 and all(c in string.ascii_letters + string.digits for c in candidate)
    assert (key is not None) is valid_form
    assert key is None or len(key) == 32
