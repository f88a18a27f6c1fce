"""Keyed pseudonyms that replace an unsubscribed citizen's OpenID on the tickets that are kept.

WeChat asks developers to delete a user's information when the user unsubscribes, but a government
ticket must be kept. The OpenID on a kept ticket is replaced with HMAC-SHA256(key, OpenID): without
the key nobody can link the ticket back to the WeChat user, and with it an auditor can still confirm
that two kept tickets came from the same person.
"""

from __future__ import annotations

import hashlib
import hmac

from intake.settings import get_settings

# Seconds a function keeps the key before reading the secret again.
KEY_CACHE_SECONDS = 300


class PseudonymKeyError(RuntimeError):
    """The pseudonym key secret is missing or empty; set OPENID_HASH_KEY_SECRET_ID and its value."""


def pseudonymize(open_id: str, key: bytes) -> str:
    """Return the hex HMAC-SHA256 of the OpenID under `key` (64 characters, never equal to an OpenID)."""
    return hmac.new(key, open_id.encode("utf-8"), hashlib.sha256).hexdigest()


def get_pseudonym_key(max_age: int = KEY_CACHE_SECONDS) -> bytes:
    """Return the HMAC key from the secret named by OPENID_HASH_KEY_SECRET_ID."""
    # Imported here because Powertools Parameters pulls in boto3 at import time.
    from aws_lambda_powertools.utilities import parameters

    secret_id = get_settings().openid_hash_key_secret_id
    if not secret_id:
        raise PseudonymKeyError("OPENID_HASH_KEY_SECRET_ID is not set; point it at the pseudonym key secret")
    value = parameters.get_secret(secret_id, max_age=max_age)
    key = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not key:
        raise PseudonymKeyError(f"secret {secret_id} is empty; store a random key of at least 32 bytes")
    return key
