"""WeChat's AES message envelope (compatible and safe mode), decrypted and encrypted with `cryptography`.

The envelope, as WeChat's WXBizMsgCrypt defines it:

- key = base64decode(EncodingAESKey + "="), exactly 32 bytes; AES-256-CBC with IV = key[:16];
- plaintext = 16 random bytes || 4-byte big-endian length || message || AppID;
- PKCS#7 padding to 32-byte blocks (pad 1..32), then base64 of the ciphertext is the `Encrypt` value.

A 16-byte unpadder rejects real traffic (official vector V3 carries 22 pad bytes), so padding is
handled here rather than with `cryptography.hazmat.primitives.padding`.

Every failure raises a `WeChatCryptoError` subclass and nothing else, whatever the input. All
decryption failures look the same from outside: the webhook verifies `msg_signature` (which needs
the Token) before it decrypts and answers every decryption failure with the same status, so there
is no padding oracle.

`cryptography`'s cipher module is imported on first use, so plain-mode deployments never load it.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from functools import cache
from typing import Any

PAD_BLOCK_SIZE = 32
AES_BLOCK_SIZE = 16
RANDOM_SIZE = 16
_LENGTH_SIZE = 4
_HEADER_SIZE = RANDOM_SIZE + _LENGTH_SIZE
_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")


class WeChatCryptoError(ValueError):
    """Base class of every error this module raises."""


class InvalidKeyError(WeChatCryptoError):
    """The EncodingAESKey is not 43 characters of [A-Za-z0-9] decoding to 32 bytes (configuration)."""


class DecryptError(WeChatCryptoError):
    """The `Encrypt` value is not a valid envelope for this key and AppID."""


class AppIdMismatchError(DecryptError):
    """The envelope decrypted and unpadded, but names another AppID."""


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """Return the 32-byte AES key of an EncodingAESKey, validating its form strictly."""
    if not isinstance(encoding_aes_key, str) or not _ENCODING_AES_KEY.fullmatch(encoding_aes_key):
        raise InvalidKeyError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as err:  # pragma: no cover - the pattern above admits only valid base64
        raise InvalidKeyError("EncodingAESKey is not base64") from err
    if len(key) != 32:  # pragma: no cover - 43 base64 characters always decode to 32 bytes
        raise InvalidKeyError("EncodingAESKey must decode to 32 bytes")
    return key


def pkcs7_pad(data: bytes, block_size: int = PAD_BLOCK_SIZE) -> bytes:
    """Pad to a multiple of `block_size` with 1..block_size bytes, each equal to the pad length."""
    pad = block_size - len(data) % block_size
    return data + bytes([pad]) * pad


def pkcs7_unpad(data: bytes, block_size: int = PAD_BLOCK_SIZE) -> bytes:
    """Remove PKCS#7 padding of 1..block_size bytes, checking every pad byte."""
    if not data:
        raise DecryptError("empty plaintext")
    pad = data[-1]
    if pad < 1 or pad > block_size or pad > len(data):
        raise DecryptError("bad padding")
    if data[-pad:] != bytes([pad]) * pad:
        raise DecryptError("bad padding")
    return data[:-pad]


@cache
def _cipher_classes() -> tuple[Any, Any, Any]:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher, algorithms, modes


def _cipher(key: bytes) -> Any:
    cipher_class, algorithms, modes = _cipher_classes()
    return cipher_class(algorithms.AES(key), modes.CBC(key[:AES_BLOCK_SIZE]))


def _ciphertext(encrypt: str | bytes) -> bytes:
    if isinstance(encrypt, bytes):
        try:
            encrypt = encrypt.decode("ascii")
        except UnicodeDecodeError as err:
            raise DecryptError("Encrypt is not ASCII") from err
    if not isinstance(encrypt, str):
        raise DecryptError("Encrypt must be text")
    try:
        data = base64.b64decode(encrypt, validate=True)
    except ValueError as err:  # binascii.Error, or non-ASCII characters in a str
        raise DecryptError("Encrypt is not base64") from err
    if not data or len(data) % AES_BLOCK_SIZE:
        raise DecryptError("ciphertext is not a whole number of AES blocks")
    return data


def decrypt_with_key(encrypt: str | bytes, key: bytes, app_id: str) -> str:
    """Decrypt one `Encrypt` value with one 32-byte key; raise `DecryptError` on any defect."""
    data = _ciphertext(encrypt)
    decryptor = _cipher(key).decryptor()
    plain = pkcs7_unpad(decryptor.update(data) + decryptor.finalize())
    if len(plain) < _HEADER_SIZE:
        raise DecryptError("plaintext shorter than its header")
    length = int.from_bytes(plain[RANDOM_SIZE:_HEADER_SIZE], "big")
    if length > len(plain) - _HEADER_SIZE:
        raise DecryptError("length field exceeds the plaintext")
    message = plain[_HEADER_SIZE : _HEADER_SIZE + length]
    if plain[_HEADER_SIZE + length :] != app_id.encode("utf-8"):
        raise AppIdMismatchError("envelope is for another AppID")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecryptError("message is not UTF-8") from err


def encrypt_with_key(text: str, key: bytes, app_id: str, random: bytes | None = None) -> str:
    """Return the base64 `Encrypt` value of `text`; `random` (16 bytes) is drawn fresh unless given."""
    nonce = secrets.token_bytes(RANDOM_SIZE) if random is None else random
    if len(nonce) != RANDOM_SIZE:
        raise WeChatCryptoError("random prefix must be 16 bytes")
    message = text.encode("utf-8")
    plain = nonce + len(message).to_bytes(_LENGTH_SIZE, "big") + message + app_id.encode("utf-8")
    encryptor = _cipher(key).encryptor()
    data = encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()
    return base64.b64encode(data).decode("ascii")


class MessageCrypto:
    """Decrypts and encrypts envelopes for one AppID.

    Decryption tries the current EncodingAESKey, then `previous_encoding_aes_key` when one is set:
    WeChat accepts both the old and the new key while an operator switches keys, so pushes
    encrypted with either must be read. Encryption always uses the current key.
    """

    def __init__(
        self, encoding_aes_key: str, app_id: str, previous_encoding_aes_key: str | None = None
    ) -> None:
        self.app_id = app_id
        self._key = decode_aes_key(encoding_aes_key)
        self._keys = [self._key]
        if previous_encoding_aes_key and previous_encoding_aes_key != encoding_aes_key:
            self._keys.append(decode_aes_key(previous_encoding_aes_key))

    def decrypt_detailed(self, encrypt: str | bytes) -> tuple[str, bool]:
        """Return the message and whether the previous key (not the current one) decrypted it."""
        first_error: DecryptError | None = None
        for index, key in enumerate(self._keys):
            try:
                return decrypt_with_key(encrypt, key, self.app_id), index > 0
            except DecryptError as err:
                first_error = first_error or err
        assert first_error is not None
        raise first_error

    def decrypt(self, encrypt: str | bytes) -> str:
        return self.decrypt_detailed(encrypt)[0]

    def encrypt(self, text: str, random: bytes | None = None) -> str:
        return encrypt_with_key(text, self._key, self.app_id, random)
