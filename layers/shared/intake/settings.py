"""Deployment settings read from the function's environment, as template.yaml sets them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Literal

MessageMode = Literal["plain", "compatible", "safe"]
MESSAGE_MODES: tuple[MessageMode, ...] = ("plain", "compatible", "safe")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from err


def _fraction(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {name} must be a number from 0 to 1, got {raw!r}") from err
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"environment variable {name} must be a number from 0 to 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Values every function may need. A missing resource name is an empty string."""

    wechat_secret_id: str
    message_mode: MessageMode
    wechat_api_base: str
    replay_window_seconds: int
    max_body_bytes: int
    inbound_queue_url: str
    media_queue_url: str
    outbound_queue_url: str
    table_name: str
    idempotency_table_name: str
    media_bucket: str
    media_kms_key_id: str
    event_bus_name: str
    ticket_prefix: str
    collecting_window_seconds: int
    openid_hash_key_secret_id: str
    local_stack: bool
    # reply-push: WeChat send calls per second of one instance, and the first retry delay in seconds
    # after a transient send failure (doubled on every further receive of the notice).
    wechat_send_rate_per_second: int = 50
    notice_retry_base_seconds: int = 30
    # media-store's first back-off after a failed download; each retry waits 4 times longer.
    media_retry_base_seconds: int = 60
    # reply-push: seconds without sends after WeChat's minute quota error 45011.
    wechat_minute_quota_pause_seconds: int = 60
    # ticket-write: lowest knowledge_matching score (0..1) at which a consultation is answered at once.
    knowledge_match_threshold: float = 0.7

    @classmethod
    def from_environ(cls) -> Settings:
        mode = os.environ.get("WECHAT_MESSAGE_MODE", "safe").strip().lower()
        if mode not in MESSAGE_MODES:
            raise ValueError(f"WECHAT_MESSAGE_MODE must be one of {', '.join(MESSAGE_MODES)}, got {mode!r}")
        return cls(
            wechat_secret_id=os.environ.get("WECHAT_SECRET_ID", ""),
            message_mode=mode,
            wechat_api_base=os.environ.get("WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/"),
            replay_window_seconds=_int("REPLAY_WINDOW_SECONDS", 300),
            max_body_bytes=_int("MAX_BODY_BYTES", 65536),
            inbound_queue_url=os.environ.get("INBOUND_QUEUE_URL", ""),
            media_queue_url=os.environ.get("MEDIA_QUEUE_URL", ""),
            outbound_queue_url=os.environ.get("OUTBOUND_QUEUE_URL", ""),
            table_name=os.environ.get("TABLE_NAME", ""),
            idempotency_table_name=os.environ.get("IDEMPOTENCY_TABLE_NAME", ""),
            media_bucket=os.environ.get("MEDIA_BUCKET", ""),
            media_kms_key_id=os.environ.get("MEDIA_KMS_KEY_ID", ""),
            event_bus_name=os.environ.get("EVENT_BUS_NAME", ""),
            ticket_prefix=os.environ.get("TICKET_PREFIX", "DG"),
            collecting_window_seconds=_int("TICKET_COLLECTING_WINDOW_SECONDS", 600),
            openid_hash_key_secret_id=os.environ.get("OPENID_HASH_KEY_SECRET_ID", ""),
            # Set only by the local runner (devstack); template.yaml never sets it.
            local_stack=os.environ.get("INTAKE_LOCAL_STACK", "") == "1",
            wechat_send_rate_per_second=_int("WECHAT_SEND_RATE_PER_SECOND", 50),
            notice_retry_base_seconds=_int("NOTICE_RETRY_BASE_SECONDS", 30),
            media_retry_base_seconds=_int("MEDIA_RETRY_BASE_SECONDS", 60),
            wechat_minute_quota_pause_seconds=_int("WECHAT_MINUTE_QUOTA_PAUSE_SECONDS", 60),
            knowledge_match_threshold=_fraction("KNOWLEDGE_MATCH_THRESHOLD", 0.7),
        )


@cache
def get_settings() -> Settings:
    """Return the settings of this process, read once per cold start."""
    return Settings.from_environ()
