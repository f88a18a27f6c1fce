"""The WeChat credentials in Secrets Manager: set, check and rotate them (`python -m devstack.ops secrets`).

The secret is the stack output `WeChatSecretArn` (or `--secret-id`). Its JSON document is what
`intake.credentials.WeChatCredentials` reads: `token`, `app_id`, `app_secret`, `encoding_aes_key`,
`original_id` and, while the EncodingAESKey is being switched, `previous_encoding_aes_key`.
The functions read the secret through a 5-minute cache (`intake.credentials.SECRET_CACHE_SECONDS`),
so a change reaches every function within 5 minutes.

Values are checked before anything is written, and no value except the AppID and the original id
(both public) is ever printed or logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from devstack.ops.stack_outputs import StackTarget

logger = logging.getLogger(__name__)

# Each field's rule, as WeChat's console sets or issues the value, and how an error describes it.
FIELD_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "token": (re.compile(r"[A-Za-z0-9]{3,32}"), "3 to 32 letters or digits"),
    "app_id": (re.compile(r"wx[0-9a-f]{16}"), "'wx' followed by 16 lowercase hex digits"),
    "app_secret": (re.compile(r"[A-Za-z0-9]{32}"), "32 letters or digits"),
    "encoding_aes_key": (re.compile(r"[A-Za-z0-9]{43}"), "exactly 43 letters or digits"),
    "previous_encoding_aes_key": (re.compile(r"[A-Za-z0-9]{43}"), "exactly 43 letters or digits"),
    "original_id": (re.compile(r"gh_[0-9a-zA-Z]{1,40}"), "'gh_' followed by letters or digits"),
}
REQUIRED_FIELDS = ("token", "app_id", "app_secret", "encoding_aes_key", "original_id")
SECRET_FIELDS = frozenset({"token", "app_secret", "encoding_aes_key", "previous_encoding_aes_key"})
PUBLIC_FIELDS = ("app_id", "original_id")


class SecretValueError(ValueError):
    """A credential is missing or malformed; the message names the field and its rule, never the value."""


def secret_id(target: StackTarget, explicit: str | None) -> str:
    return explicit or target.output("WeChatSecretArn")


def validate_document(document: dict[str, Any]) -> dict[str, str]:
    """Return the document with only known fields; raises SecretValueError listing every bad field."""
    unknown = sorted(set(document) - set(FIELD_RULES))
    problems = [f"{name}: unknown field" for name in unknown]
    for name, (pattern, rule) in FIELD_RULES.items():
        value = document.get(name)
        if value in (None, "") and name not in REQUIRED_FIELDS:
            continue
        if not isinstance(value, str) or not value:
            problems.append(f"{name}: missing, expected {rule}")
        elif not pattern.fullmatch(value):
            problems.append(f"{name}: invalid, expected {rule}")
    previous = document.get("previous_encoding_aes_key")
    if previous and previous == document.get("encoding_aes_key"):
        problems.append("previous_encoding_aes_key: equals encoding_aes_key; nothing is being rotated")
    if problems:
        raise SecretValueError("invalid WeChat credentials: " + "; ".join(problems))
    return {name: str(document[name]) for name in FIELD_RULES if document.get(name)}


def describe(document: dict[str, Any]) -> str:
    """Return a one-line summary that shows the public fields and only whether each secret field is set."""
    parts = [f"{name}={document.get(name) or '(empty)'}" for name in PUBLIC_FIELDS]
    parts += [f"{name}={'set' if document.get(name) else 'not set'}" for name in sorted(SECRET_FIELDS)]
    return ", ".join(parts)


class WeChatSecretStore:
    """Reads and writes the secret's JSON document."""

    def __init__(self, client: Any, secret_id: str) -> None:
        self._client = client
        self._secret_id = secret_id

    def read(self) -> dict[str, Any] | None:
        """Return the current document; None when the secret does not exist or has no value yet."""
        try:
            value = self._client.get_secret_value(SecretId=self._secret_id)["SecretString"]
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        try:
            document = json.loads(value)
        except json.JSONDecodeError:
            logger.warning("the secret's current value is not JSON; it will be replaced")
            return None
        return document if isinstance(document, dict) else None

    def write(self, document: dict[str, str]) -> None:
        """Store `document` as the secret's new current version, creating the secret when needed."""
        value = json.dumps(document, ensure_ascii=False)
        try:
            self._client.put_secret_value(SecretId=self._secret_id, SecretString=value)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            self._client.create_secret(Name=self._secret_id, SecretString=value)
            logger.info("secret created")
            return
        logger.info("secret updated")


def read_credentials(target: StackTarget, explicit_secret_id: str | None = None) -> Any:
    """Return the stack's credentials as `intake.credentials.WeChatCredentials`."""
    from intake.credentials import WeChatCredentials

    store = WeChatSecretStore(target.client("secretsmanager"), secret_id(target, explicit_secret_id))
    document = store.read()
    if document is None:
        raise SecretValueError("the WeChat secret has no value; set it with `python -m devstack.ops secrets`")
    return WeChatCredentials.model_validate(document)


# -- the secrets command ----------------------------------------------------------------------------


def merge(current: dict[str, Any] | None, updates: dict[str, Any]) -> dict[str, Any]:
    """Return the current document with the non-empty `updates` applied."""
    document = {name: value for name, value in (current or {}).items() if value not in (None, "")}
    document.update({name: value for name, value in updates.items() if value not in (None, "")})
    return document


def prompt_values(
    current: dict[str, Any] | None,
    ask_public: Callable[[str], str],
    ask_secret: Callable[[str], str],
) -> dict[str, str]:
    """Ask for each required field; an empty answer keeps the current value."""
    values = {}
    for name in REQUIRED_FIELDS:
        keep = " (Enter keeps the current value)" if (current or {}).get(name) else ""
        ask = ask_secret if name in SECRET_FIELDS else ask_public
        values[name] = ask(f"{name}{keep}: ").strip()
    return values


def rotate_aes_key(document: dict[str, Any], new_key: str) -> dict[str, Any]:
    """Make `new_key` current and keep the current key as `previous_encoding_aes_key`."""
    current = document.get("encoding_aes_key")
    if not current:
        raise SecretValueError("encoding_aes_key is not set yet; set the credentials before rotating")
    if new_key == current:
        raise SecretValueError(
            "the new EncodingAESKey equals the current one; generate a new one in the console"
        )
    return {**document, "encoding_aes_key": new_key, "previous_encoding_aes_key": current}


def finish_rotation(document: dict[str, Any]) -> dict[str, Any]:
    """Drop `previous_encoding_aes_key` once WeChat sends with the new key only."""
    if not document.get("previous_encoding_aes_key"):
        raise SecretValueError("no rotation in progress: previous_encoding_aes_key is not set")
    return {name: value for name, value in document.items() if name != "previous_encoding_aes_key"}


def update_secret(
    store: WeChatSecretStore,
    updates: dict[str, Any] | None = None,
    new_aes_key: str | None = None,
    finish: bool = False,
) -> dict[str, str]:
    """Apply one change to the secret, check the whole result and write it; return what was written."""
    current = store.read()
    document = merge(current, updates or {})
    if new_aes_key is not None:
        document = rotate_aes_key(document, new_aes_key)
    if finish:
        document = finish_rotation(document)
    checked = validate_document(document)
    store.write(checked)
    changed = sorted(name for name in FIELD_RULES if (current or {}).get(name) != checked.get(name))
    logger.info("WeChat secret written: %d fields changed (%s)", len(changed), ", ".join(changed) or "none")
    return checked
