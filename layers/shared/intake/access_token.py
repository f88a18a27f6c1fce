"""The one WeChat access token of the account, shared by every function through DynamoDB.

WeChat allows a limited number of token fetches, and a fetch can end the previous token's life, so
no function fetches on its own. The token lives in the tickets table item
`PK=WECHAT_TOKEN#{app_id}`, `SK=TOKEN`, encrypted with KMS, with its expiry:

- `token_ciphertext` (binary, KMS, encryption context `purpose` + `app_id`), `token_expires_at`
  (Unix seconds; not the table's TTL attribute `expires_at`, so DynamoDB never deletes the item),
  `fetched_at` (Unix seconds when the fetch started) and `version` (incremented on every write).
- `lease_owner`, `lease_until`: a single-writer lease. Only the instance that wins the conditional
  write on the lease calls `cgi-bin/stable_token`; the others wait for the new version.
- A token is written only when its `fetched_at` is newer than the stored one, so a slow fetcher
  never replaces a newer token with an older one.

`cgi-bin/stable_token` is always called in normal mode (`force_refresh: false`). In that mode WeChat
returns the current token until its last 5 minutes and only then issues a new one, while the old one
stays valid until its own expiry. Force-refresh mode invalidates the token that every other
function holds and is limited to 20 calls a day, so it is left to an operator.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import urllib3
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from intake import clock
from intake.credentials import WeChatCredentials, get_wechat_credentials
from intake.keys import token_pk
from intake.wechat_api import (
    IP_ALLOW_LIST_HINT,
    IP_NOT_ALLOWED_ERRCODE,
    WeChatHttp,
    WeChatProtocolError,
    error_from_answer,
)

logger = Logger(child=True)

TOKEN_SK = "TOKEN"  # noqa: S105 - a sort key, not a credential
# Callers stop using a token 5 minutes before it expires; from then on a normal-mode fetch returns a
# new token (WeChat issues one only in the last 5 minutes).
REFRESH_AHEAD_SECONDS = 300
# The scheduled refresh (every 5 minutes) fetches when the token would fall due before its next run.
SCHEDULED_REFRESH_AHEAD_SECONDS = REFRESH_AHEAD_SECONDS + 300 + 60
# A stored token fetched this recently is not fetched again except after a rejection; it stops a
# loop when WeChat returns the same token with less than REFRESH_AHEAD_SECONDS left.
MIN_FETCH_INTERVAL_SECONDS = 30
# How long a lease holder may take to fetch and store; longer than the fetch's 5 s read timeout.
LEASE_SECONDS = 15
# How long a caller waits for another instance's refresh before giving up; well inside the 30 s timeout
# of reply-push and token-refresh, so a stuck lease holder cannot time out a whole batch.
MAX_WAIT_SECONDS = 10
POLL_SECONDS = 0.2

_ENCRYPTION_PURPOSE = "wechat-access-token"
_CONDITION_FAILED = "ConditionalCheckFailedException"


class AccessTokenUnavailableError(Exception):
    """No usable access token could be read or fetched; the caller retries its work later."""


class RefreshOutcome(StrEnum):
    STILL_FRESH = "still_fresh"
    FETCHED = "fetched"
    # Another instance held the lease and stored (or is storing) the new token.
    LEFT_TO_OTHER_INSTANCE = "left_to_other_instance"


@dataclass(frozen=True)
class FetchedToken:
    token: str
    expires_at: float
    fetched_at: float


@dataclass(frozen=True)
class StoredToken:
    token: str
    expires_at: float
    fetched_at: float
    version: int

    def remaining(self, now: float) -> float:
        return self.expires_at - now

    def __repr__(self) -> str:
        return f"StoredToken(version={self.version}, expires_at={self.expires_at}, token hidden)"


class StableTokenFetcher:
    """Fetches the account's token from `POST cgi-bin/stable_token` in normal mode."""

    path = "cgi-bin/stable_token"

    def __init__(
        self,
        base_url: str,
        credentials: Callable[[], WeChatCredentials] = get_wechat_credentials,
        timeout: float = 5.0,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/{self.path}"
        self._credentials = credentials
        self._http = WeChatHttp(timeout=timeout, http=http)

    def __call__(self) -> FetchedToken:
        credentials = self._credentials()
        if not credentials.app_secret:
            raise AccessTokenUnavailableError(
                "app_secret is empty in the WeChat secret; set it with `python -m devstack.ops secrets`"
            )
        payload = {
            "grant_type": "client_credential",
            "appid": credentials.app_id,
            "secret": credentials.app_secret,
            "force_refresh": False,
        }
        started = clock.now()
        document = self._http.post_json(self._url, self.path, payload, secret=credentials.app_secret)
        error = error_from_answer(document, self.path)
        if error is not None:
            if error.errcode == IP_NOT_ALLOWED_ERRCODE:
                logger.error(
                    "WeChat rejected the token request from this IP address (infrastructure error)",
                    extra={"errcode": error.errcode, "hint": IP_ALLOW_LIST_HINT},
                )
            else:
                logger.error("stable_token failed", extra={"errcode": error.errcode, "errmsg": error.errmsg})
            raise error
        token = document.get("access_token")
        expires_in = document.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            raise WeChatProtocolError(
                "cgi-bin/stable_token returned no access_token or no positive expires_in"
            )
        return FetchedToken(token=token, expires_at=started + expires_in, fetched_at=started)


class AccessTokenProvider:
    """Reads the shared token (memory, then DynamoDB) and refreshes it under a single-writer lease.

    Create one per process (per Lambda container) and reuse it; `get()` costs nothing while the
    token in memory has more than REFRESH_AHEAD_SECONDS left.
    """

    def __init__(
        self,
        app_id: str,
        table: Any,
        kms: Any,
        kms_key_id: str,
        fetch: Callable[[], FetchedToken],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not kms_key_id:
            raise ValueError(
                "MEDIA_KMS_KEY_ID is empty; set it to the template's DataKey for every WeChat caller"
            )
        self._app_id = app_id
        self._table = table
        self._kms = kms
        self._kms_key_id = kms_key_id
        self._fetch = fetch
        self._sleep = sleep
        self._key = {"PK": token_pk(app_id), "SK": TOKEN_SK}
        self._context = {"purpose": _ENCRYPTION_PURPOSE, "app_id": app_id}
        self._cached: StoredToken | None = None
        # Whether the last refresh of this instance called stable_token itself.
        self._fetched = False

    @classmethod
    def from_environment(cls) -> AccessTokenProvider:
        """Build the provider from the function's settings and the WeChat secret."""
        import boto3

        from intake.settings import get_settings

        settings = get_settings()
        return cls(
            app_id=get_wechat_credentials().app_id,
            table=boto3.resource("dynamodb").Table(settings.table_name),
            kms=boto3.client("kms"),
            kms_key_id=settings.media_kms_key_id,
            fetch=StableTokenFetcher(settings.wechat_api_base),
        )

    # -- public interface ------------------------------------------------------------------------

    def get(self) -> str:
        """Return a token with more than REFRESH_AHEAD_SECONDS left, refreshing it when due."""
        now = clock.now()
        if self._cached is not None and self._cached.remaining(now) > REFRESH_AHEAD_SECONDS:
            return self._cached.token
        stored = self._load()
        if stored is not None and self._usable(stored, now, REFRESH_AHEAD_SECONDS):
            return self._remember(stored).token
        return self._refresh(stored, rejected=None)

    def refresh_after_rejection(self, rejected_token: str) -> str:
        """Return a token after WeChat rejected `rejected_token` (errcode 40001/40014/42001).

        Fetches only when the stored token is still the rejected one; when another instance has
        already stored a newer token, returns that one.
        """
        self._cached = None
        stored = self._load()
        if stored is not None and stored.token != rejected_token and stored.remaining(clock.now()) > 0:
            return self._remember(stored).token
        return self._refresh(stored, rejected=rejected_token)

    def refresh_if_due(self, ahead_seconds: float = SCHEDULED_REFRESH_AHEAD_SECONDS) -> RefreshOutcome:
        """Fetch a token when the stored one has `ahead_seconds` or less left (for token-refresh)."""
        stored = self._load()
        if stored is not None and self._usable(stored, clock.now(), ahead_seconds):
            return RefreshOutcome.STILL_FRESH
        self._fetched = False
        self._refresh(stored, rejected=None, ahead_seconds=ahead_seconds)
        return RefreshOutcome.FETCHED if self._fetched else RefreshOutcome.LEFT_TO_OTHER_INSTANCE

    # -- store ------------------------------------------------------------------------------------

    def _usable(self, stored: StoredToken, now: float, ahead: float) -> bool:
        """Return whether `stored` can be used without a fetch.

        A token fetched within MIN_FETCH_INTERVAL_SECONDS counts as usable while it has not expired.
        """
        if stored.remaining(now) > ahead:
            return True
        return stored.remaining(now) > 0 and now - stored.fetched_at < MIN_FETCH_INTERVAL_SECONDS

    def _remember(self, stored: StoredToken) -> StoredToken:
        self._cached = stored
        return stored

    def _load(self) -> StoredToken | None:
        item = self._table.get_item(Key=self._key, ConsistentRead=True).get("Item")
        if not item or "token_ciphertext" not in item:
            return None
        ciphertext = item["token_ciphertext"]
        blob = ciphertext.value if hasattr(ciphertext, "value") else bytes(ciphertext)
        plaintext = self._kms.decrypt(
            CiphertextBlob=blob, EncryptionContext=self._context, KeyId=self._kms_key_id
        )["Plaintext"]
        return StoredToken(
            token=plaintext.decode("utf-8"),
            expires_at=float(item["token_expires_at"]),
            fetched_at=float(item["fetched_at"]),
            version=int(item.get("version", 0)),
        )

    def _save(self, fetched: FetchedToken) -> StoredToken | None:
        """Store `fetched` unless a newer fetch is stored already; return what was stored, else None."""
        ciphertext = self._kms.encrypt(
            KeyId=self._kms_key_id, Plaintext=fetched.token.encode("utf-8"), EncryptionContext=self._context
        )["CiphertextBlob"]
        try:
            attributes = self._table.update_item(
                Key=self._key,
                UpdateExpression=(
                    "SET token_ciphertext = :ciphertext, token_expires_at = :expires_at, "
                    "fetched_at = :fetched_at, item_type = :item_type, app_id = :app_id ADD version :one"
                ),
                ConditionExpression="attribute_not_exists(fetched_at) OR fetched_at < :fetched_at",
                ExpressionAttributeValues={
                    ":ciphertext": ciphertext,
                    ":expires_at": Decimal(str(fetched.expires_at)),
                    ":fetched_at": Decimal(str(fetched.fetched_at)),
                    ":item_type": "wechat_token",
                    ":app_id": self._app_id,
                    ":one": 1,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as err:
            if err.response["Error"]["Code"] != _CONDITION_FAILED:
                raise
            logger.info("a newer access token is already stored; keeping it")
            return None
        return StoredToken(
            token=fetched.token,
            expires_at=fetched.expires_at,
            fetched_at=fetched.fetched_at,
            version=int(attributes["version"]),
        )

    def _acquire_lease(self, owner: str) -> bool:
        now = clock.now()
        try:
            self._table.update_item(
                Key=self._key,
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":owner": owner,
                    ":until": Decimal(str(now + LEASE_SECONDS)),
                    ":now": Decimal(str(now)),
                },
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != _CONDITION_FAILED:
                raise
            return False
        return True

    def _release_lease(self, owner: str) -> None:
        try:
            self._table.update_item(
                Key=self._key,
                UpdateExpression="REMOVE lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as err:
            # The lease expired and another instance holds it now; that instance releases it.
            if err.response["Error"]["Code"] != _CONDITION_FAILED:
                raise

    # -- refresh ----------------------------------------------------------------------------------

    def _refresh(
        self, stored: StoredToken | None, rejected: str | None, ahead_seconds: float = REFRESH_AHEAD_SECONDS
    ) -> str:
        """Fetch and store a token under the lease, or wait for the instance that holds the lease."""
        base_version = stored.version if stored else 0
        owner = uuid.uuid4().hex
        deadline = clock.now() + MAX_WAIT_SECONDS
        while True:
            if self._acquire_lease(owner):
                try:
                    return self._fetch_under_lease(base_version, rejected, ahead_seconds)
                finally:
                    self._release_lease(owner)
            current = self._load()
            now = clock.now()
            if current is not None and current.remaining(now) > 0:
                if current.version > base_version:
                    return self._remember(current).token
                if rejected is None:
                    # Another instance is refreshing and this token is still valid: keep working with it.
                    return current.token
            if now >= deadline:
                raise AccessTokenUnavailableError(
                    f"no access token was stored within {MAX_WAIT_SECONDS} s while another instance held "
                    "the refresh lease; check the token-refresh function's log"
                )
            self._sleep(POLL_SECONDS * (0.5 + random.random()))  # noqa: S311 - jitter, not security

    def _fetch_under_lease(self, base_version: int, rejected: str | None, ahead_seconds: float) -> str:
        # Another instance may have stored a new token between our read and the lease.
        current = self._load()
        now = clock.now()
        if (
            current is not None
            and current.version > base_version
            and current.token != rejected
            and current.remaining(now) > 0
        ):
            return self._remember(current).token
        if current is not None and rejected is None and self._usable(current, now, ahead_seconds):
            return self._remember(current).token
        fetched = self._fetch()
        self._fetched = True
        saved = self._save(fetched)
        if saved is None:
            newer = self._load()
            if newer is not None and newer.remaining(clock.now()) > 0:
                return self._remember(newer).token
            raise AccessTokenUnavailableError(
                "the stored access token changed during the refresh and has expired"
            )
        logger.info(
            "access token refreshed",
            extra={"version": saved.version, "expires_in": round(saved.expires_at - fetched.fetched_at)},
        )
        return self._remember(saved).token
