"""An emulated WeChat Official Account API on 127.0.0.1, with WeChat's rules and error codes.

Covered APIs: access tokens (`cgi-bin/token`, `cgi-bin/stable_token`), temporary media
(`cgi-bin/media/get`, `cgi-bin/media/upload`), customer-service and template messages, mass sends
to all followers (`cgi-bin/message/mass/sendall`, 4 a calendar month) and the custom menu. Errors are
JSON `{"errcode": ..., "errmsg": ...}` with HTTP 200, as WeChat sends them. Time runs on an emulator
clock that tests move forward with `POST /_emulator/clock`. Control endpoints under `/_emulator/`
register users, interactions and media, inject faults and read the call log (see docs/local-stack.md).

Use it standalone with `with start_emulator() as emulator: ...` (`emulator.url`, `.state`, `.calls`)
or through the local stack, which starts one for the functions' `WECHAT_API_BASE`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The AppID and AppSecret the emulator accepts by default (the local stack's defaults).
DEFAULT_APP_ID = "wx134c8103faa5a59e"
DEFAULT_APP_SECRET = "local-app-secret"  # noqa: S105 - a local test credential, not a secret

SAMPLE_MEDIA = Path(__file__).resolve().parent / "sample_media"

TOKEN_LIFETIME_SECONDS = 7200
# A replaced token keeps working this long; stable_token also rotates in the last 5 minutes.
TOKEN_OVERLAP_SECONDS = 300
MEDIA_LIFETIME_SECONDS = 3 * 86400
SERVICE_WINDOW_SECONDS = 48 * 3600
SERVICE_MESSAGE_QUOTA = 5
TEXT_LIMIT_BYTES = 2048
CLIENT_MSG_ID_WINDOW_SECONDS = 600

# errcode -> errmsg, worded as WeChat words them.
ERRORS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid meida size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41005: "media data missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    46003: "menu no exist",
    47001: "data format error",
}

MB = 1024 * 1024
# cgi-bin/media/upload `type` -> (size limit in bytes, file types accepted), as WeChat documents them.
UPLOAD_LIMITS: dict[str, tuple[int, frozenset[str]]] = {
    "image": (10 * MB, frozenset({"jpg", "png", "gif"})),
    "voice": (2 * MB, frozenset({"amr", "mp3"})),
    "video": (10 * MB, frozenset({"mp4"})),
    "thumb": (64 * 1024, frozenset({"jpg"})),
}
# file type -> Content-Type the emulator serves it with from media/get.
UPLOAD_CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "amr": "audio/amr",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
}
# Largest request body the emulator reads: the largest upload plus room for the multipart framing.
MAX_REQUEST_BYTES = 10 * MB + 64 * 1024
# A service account (服务号) may mass-send to its followers 4 times per calendar month (China time).
MASS_SEND_MONTHLY_QUOTA = 4
MASS_SEND_MESSAGE_TYPES = frozenset({"text", "mpnews", "voice", "image", "mpvideo", "wxcard"})
CHINA_UTC_OFFSET_SECONDS = 8 * 3600
# Customer-service message types whose body names a temporary media file.
MEDIA_MESSAGE_TYPES = frozenset({"image", "voice", "video"})

# kind -> (sample file, Content-Type, file extension)
MEDIA_KINDS = {
    "image": ("sample.jpg", "image/jpeg", "jpg"),
    "thumb": ("thumb.jpg", "image/jpeg", "jpg"),
    "voice": ("sample.amr", "audio/amr", "amr"),
    # NOTE: WeChat's MediaId16K copy is served from the same AMR-NB sample, because the bundled
    # ffmpeg has no 16 kHz voice encoder (AMR-WB or Speex).
    "voice16k": ("sample.amr", "audio/amr", "amr"),
    "video": ("sample.mp4", "video/mp4", "mp4"),
    "shortvideo": ("sample.mp4", "video/mp4", "mp4"),
}

CUSTOM_MESSAGE_TYPES = frozenset(
    {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "wxcard",
     "miniprogrampage"}
)  # fmt: skip
MENU_BUTTON_TYPES = frozenset(
    {"click", "view", "miniprogram", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
     "pic_photo_or_album", "pic_weixin", "location_select", "media_id", "article_id", "article_view_limited"}
)  # fmt: skip

# Button types that carry a `key` (the others carry a url, media_id or article_id).
_KEYED_BUTTON_TYPES = MENU_BUTTON_TYPES - {
    "view",
    "miniprogram",
    "media_id",
    "article_id",
    "article_view_limited",
}

logger = logging.getLogger(__name__)


class WeChatApiError(Exception):
    """A WeChat error response, sent as `{"errcode": ..., "errmsg": ...}` with HTTP 200."""

    def __init__(self, errcode: int) -> None:
        super().__init__(ERRORS.get(errcode, "error"))
        self.errcode = errcode

    def document(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "errmsg": ERRORS.get(self.errcode, "error")}


@dataclass
class User:
    subscribed: bool = True
    last_interaction_at: float | None = None
    quota_used: int = 0


@dataclass
class Media:
    """A temporary media file: a sample file by `kind`, or the bytes of an upload in `data`."""

    kind: str
    created_at: float
    data: bytes | None = None
    content_type: str | None = None
    extension: str | None = None


@dataclass
class Fault:
    """An injected failure for the next `times` calls of `api` ("*" is every WeChat API)."""

    api: str
    errcode: int | None = None
    http_status: int | None = None
    latency_ms: int = 0
    times: int = 1


@dataclass
class EmulatorState:
    """The emulator's users, tokens, media, faults and call log. Every access holds `lock`."""

    app_id: str
    app_secret: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    clock_offset: float = 0.0
    # token -> expiry (emulator time); invalidated tokens are removed.
    tokens: dict[str, float] = field(default_factory=dict)
    stable_token: str | None = None
    token_calls: dict[str, int] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    menu: dict[str, Any] | None = None
    faults: list[Fault] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    # (openid, client_msg_id) -> (msgid, sent at)
    template_sends: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    next_msgid: int = 1000000001
    media_error_content_type: str = "application/json"
    # Accepted mass sends (message/mass/sendall), oldest first; each has msg_id, month, payload, at.
    mass_sends: list[dict[str, Any]] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def reset(self) -> None:
        with self.lock:
            self.clock_offset = 0.0
            self.tokens.clear()
            self.stable_token = None
            self.token_calls.clear()
            self.users.clear()
            self.media.clear()
            self.menu = None
            self.faults.clear()
            self.calls.clear()
            self.sent.clear()
            self.template_sends.clear()
            self.mass_sends.clear()
            self.media_error_content_type = "application/json"

    # -- control ---------------------------------------------------------------------------------------

    def set_user(self, openid: str, subscribed: bool) -> None:
        with self.lock:
            self.users.setdefault(openid, User()).subscribed = subscribed

    def record_interaction(self, openid: str, at: float | None = None) -> None:
        """Open the 48-hour customer-service window and reset the 5-message quota, as a message does."""
        with self.lock:
            user = self.users.setdefault(openid, User())
            user.last_interaction_at = self.now() if at is None else at
            user.quota_used = 0

    def register_media(self, media_id: str, kind: str, created_at: float | None = None) -> None:
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r}; use one of {', '.join(sorted(MEDIA_KINDS))}")
        with self.lock:
            self.media[media_id] = Media(
                kind=kind, created_at=self.now() if created_at is None else created_at
            )

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def invalidate_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()
            self.stable_token = None

    # -- tokens ----------------------------------------------------------------------------------------

    def _check_app(self, app_id: str | None, secret: str | None, grant_type: str | None) -> None:
        if grant_type != "client_credential":
            raise WeChatApiError(40002)
        if app_id != self.app_id:
            raise WeChatApiError(40013)
        if secret != self.app_secret:
            raise WeChatApiError(40125)

    def _new_token(self) -> str:
        now = self.now()
        for token, expires_at in list(self.tokens.items()):
            self.tokens[token] = min(expires_at, now + TOKEN_OVERLAP_SECONDS)
        token = "LOCAL_" + secrets.token_urlsafe(48)
        self.tokens[token] = now + TOKEN_LIFETIME_SECONDS
        self.stable_token = token
        return token

    def issue_token(self, api: str, app_id: str | None, secret: str | None, grant_type: str | None,
                    force_refresh: bool = False) -> dict[str, Any]:  # fmt: skip
        """Issue or return an access token. `cgi-bin/token` and a forced stable_token replace the current one."""
        with self.lock:
            self._check_app(app_id, secret, grant_type)
            self.token_calls[api] = self.token_calls.get(api, 0) + 1
            now = self.now()
            current = self.stable_token
            if api == "stable_token" and not force_refresh and current in self.tokens:
                remaining = self.tokens[current] - now
                if remaining > TOKEN_OVERLAP_SECONDS:
                    return {"access_token": current, "expires_in": int(remaining)}
            token = self._new_token()
            return {"access_token": token, "expires_in": TOKEN_LIFETIME_SECONDS}

    def check_token(self, token: str | None) -> None:
        with self.lock:
            if not token:
                raise WeChatApiError(41001)
            if token not in self.tokens:
                raise WeChatApiError(40001)
            if self.tokens[token] <= self.now():
                raise WeChatApiError(42001)

    # -- faults ----------------------------------------------------------------------------------------

    def take_fault(self, api: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.api in (api, "*"):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- messages --------------------------------------------------------------------------------------

    def _subscribed_user(self, openid: Any) -> User:
        if not isinstance(openid, str) or openid not in self.users:
            raise WeChatApiError(40003)
        user = self.users[openid]
        if not user.subscribed:
            raise WeChatApiError(43004)
        return user

    def send_custom(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            user = self._subscribed_user(payload.get("touser"))
            msgtype = payload.get("msgtype")
            if msgtype not in CUSTOM_MESSAGE_TYPES or not isinstance(payload.get(msgtype), dict):
                raise WeChatApiError(40008)
            if msgtype == "text":
                content = payload["text"].get("content")
                if not isinstance(content, str) or not content:
                    raise WeChatApiError(47001)
                if len(content.encode("utf-8")) > TEXT_LIMIT_BYTES:
                    raise WeChatApiError(45002)
            if msgtype in MEDIA_MESSAGE_TYPES:
                media_id = payload[msgtype].get("media_id")
                self.media_file(media_id if isinstance(media_id, str) else None)
            now = self.now()
            if user.last_interaction_at is None or now - user.last_interaction_at > SERVICE_WINDOW_SECONDS:
                raise WeChatApiError(45015)
            if user.quota_used >= SERVICE_MESSAGE_QUOTA:
                raise WeChatApiError(45047)
            user.quota_used += 1
            self.sent.append({"api": "message/custom/send", "touser": payload["touser"], "payload": payload,
                              "at": now})  # fmt: skip
            return {"errcode": 0, "errmsg": "ok"}

    def send_template(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._subscribed_user(payload.get("touser"))
            if not isinstance(payload.get("template_id"), str) or not payload["template_id"]:
                raise WeChatApiError(40037)
            if not isinstance(payload.get("data"), dict):
                raise WeChatApiError(47001)
            now = self.now()
            client_msg_id = payload.get("client_msg_id")
            key = (payload["touser"], str(client_msg_id)) if client_msg_id else None
            if key is not None and key in self.template_sends:
                msgid, sent_at = self.template_sends[key]
                if now - sent_at < CLIENT_MSG_ID_WINDOW_SECONDS:
                    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}
            msgid = self.next_msgid
            self.next_msgid += 1
            if key is not None:
                self.template_sends[key] = (msgid, now)
            self.sent.append({"api": "message/template/send", "touser": payload["touser"], "payload": payload,
                              "at": now, "msgid": msgid})  # fmt: skip
            return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def mass_send_all(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Accept a mass send to every follower (`filter.is_to_all`), within the monthly quota.

        A `clientmsgid` that was already sent answers 45065 with the earlier send's msg_id, as WeChat
        does, so a retry never reaches the followers twice.
        """
        send_filter = payload.get("filter")
        if not isinstance(send_filter, dict) or send_filter.get("is_to_all") is not True:
            raise WeChatApiError(47001)
        msgtype = payload.get("msgtype")
        if msgtype not in MASS_SEND_MESSAGE_TYPES or not isinstance(payload.get(msgtype), dict):
            raise WeChatApiError(40008)
        if msgtype == "text":
            content = payload["text"].get("content")
            if not isinstance(content, str) or not content:
                raise WeChatApiError(47001)
            if len(content.encode("utf-8")) > TEXT_LIMIT_BYTES:
                raise WeChatApiError(45002)
        with self.lock:
            client_msg_id = payload.get("clientmsgid")
            earlier = next(
                (send for send in self.mass_sends if client_msg_id and send["clientmsgid"] == client_msg_id),
                None,
            )
            if earlier is not None:
                return {"errcode": 45065, "errmsg": ERRORS[45065], "msg_id": earlier["msg_id"]}
            now = self.now()
            month = time.strftime("%Y%m", time.gmtime(now + CHINA_UTC_OFFSET_SECONDS))
            if sum(send["month"] == month for send in self.mass_sends) >= MASS_SEND_MONTHLY_QUOTA:
                raise WeChatApiError(45028)
            msg_id = self.next_msgid
            self.next_msgid += 1
            self.mass_sends.append({"msg_id": msg_id, "clientmsgid": client_msg_id, "month": month,
                                    "payload": payload, "at": now})  # fmt: skip
            return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id,
                    "msg_data_id": msg_id}  # fmt: skip

    def create_menu(self, payload: dict[str, Any]) -> dict[str, Any]:
        buttons = payload.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise WeChatApiError(40016)
        for button in buttons:
            _check_button(button, top_level=True)
        with self.lock:
            self.menu = payload
        return {"errcode": 0, "errmsg": "ok"}

    def upload_media(self, media_type: str | None, upload: Upload) -> dict[str, Any]:
        """Store an upload as new temporary media, checked as cgi-bin/media/upload checks it."""
        if media_type not in UPLOAD_LIMITS:
            raise WeChatApiError(40004)
        limit, file_types = UPLOAD_LIMITS[media_type]
        file_type = sniff_file_type(upload.data)
        if file_type not in file_types:
            raise WeChatApiError(40005)
        if len(upload.data) > limit:
            raise WeChatApiError(40006)
        with self.lock:
            created_at = self.now()
            media_id = secrets.token_urlsafe(48)
            self.media[media_id] = Media(
                kind=media_type,
                created_at=created_at,
                data=upload.data,
                content_type=UPLOAD_CONTENT_TYPES[file_type],
                extension=file_type,
            )
        return {"type": media_type, "media_id": media_id, "created_at": int(created_at)}

    def media_file(self, media_id: str | None) -> Media:
        with self.lock:
            media = self.media.get(media_id or "")
            if media is None or self.now() - media.created_at > MEDIA_LIFETIME_SECONDS:
                raise WeChatApiError(40007)
            return media


def sniff_file_type(data: bytes) -> str | None:
    """Return the file type that WeChat recognises from the first bytes of an upload, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"#!AMR"):
        return "amr"
    # An ID3v2 tag, or an MPEG audio frame header (11 sync bits set).
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


@dataclass(frozen=True)
class Upload:
    """The `media` field of a multipart upload."""

    filename: str
    content_type: str
    data: bytes


def parse_media_field(content_type: str, body: bytes) -> Upload:
    """Return the `media` part of a multipart/form-data body; raises 41005 when there is none."""
    if not content_type.lower().startswith("multipart/form-data") or not body:
        raise WeChatApiError(41005)
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    document: Message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not document.is_multipart():
        raise WeChatApiError(41005)
    for part in document.iter_parts():  # type: ignore[attr-defined]
        if part.get_param("name", header="content-disposition") != "media":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            break
        return Upload(
            filename=part.get_filename() or "",
            content_type=part.get_content_type(),
            data=data,
        )
    raise WeChatApiError(41005)


def _check_button(button: Any, top_level: bool) -> None:
    if not isinstance(button, dict):
        raise WeChatApiError(47001)
    name = button.get("name")
    name_limit = 16 if top_level else 60
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > name_limit:
        raise WeChatApiError(40018)
    if "sub_button" in button and top_level:
        subs = button["sub_button"]
        if not isinstance(subs, list) or len(subs) > 5:
            raise WeChatApiError(40016)
        for sub in subs:
            _check_button(sub, top_level=False)
        if subs:
            return
    kind = button.get("type")
    if kind not in MENU_BUTTON_TYPES:
        raise WeChatApiError(40017)
    if kind in _KEYED_BUTTON_TYPES:
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode("utf-8")) > 128:
            raise WeChatApiError(40019)


class _Handler(BaseHTTPRequestHandler):
    server: _EmulatorHttpServer
    protocol_version = "HTTP/1.1"
    # The API call whose answer is about to be sent (see `_api`).
    _unrecorded_call: dict[str, Any] | None = None

    # -- plumbing --------------------------------------------------------------------------------------

    @property
    def state(self) -> EmulatorState:
        return self.server.state

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        if self._unrecorded_call is not None:
            self._record(self._unrecorded_call)
            self._unrecorded_call = None
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, document: Any, status: int = 200, content_type: str = "application/json") -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self._send(status, body, [("Content-Type", f"{content_type}; charset=utf-8")])

    def _raw_body(self) -> bytes:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_REQUEST_BYTES)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines carry the access token in the query; they are not logged.
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        raw = self._raw_body() if method == "POST" else b""
        payload: Any = None
        if parts.path == "/cgi-bin/media/upload":
            # A multipart body, parsed by the API after the token check, as WeChat does.
            payload = raw
        elif raw:
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError:
                logger.warning("request body of %s is not valid JSON", parts.path)
                self._json(WeChatApiError(47001).document())
                return
        if parts.path.startswith("/_emulator/"):
            self._control(method, parts.path.removeprefix("/_emulator/"), payload)
        elif parts.path.startswith("/_media/"):
            self._serve_media_url(parts.path.removeprefix("/_media/"))
        elif parts.path.startswith("/cgi-bin/"):
            self._api(method, parts.path.removeprefix("/cgi-bin/"), query, payload)
        else:
            self._send(404, b"not found", [("Content-Type", "text/plain")])

    # -- WeChat APIs -----------------------------------------------------------------------------------

    def _api(self, method: str, api: str, query: dict[str, str], payload: Any) -> None:
        fault = self.state.take_fault(api)
        if fault is not None and fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        touser = payload.get("touser") if isinstance(payload, dict) else None
        if isinstance(payload, bytes):
            loggable = _upload_summary(query, self.headers.get("Content-Type") or "", payload)
        else:
            loggable = _loggable(api, query, payload)
        call = {"api": api, "method": method, "touser": touser, "payload": loggable, "at": self.state.now()}
        if fault is not None and fault.http_status:
            call["errcode"] = None
            call["http_status"] = fault.http_status
            self._record(call)
            self._send(fault.http_status, b"Service Unavailable", [("Content-Type", "text/plain")])
            return
        # Recorded by `_send` just before the answer goes out, so a client that has its answer
        # always finds the call in the log; an error raised before then changes the errcode.
        call["errcode"] = 0
        self._unrecorded_call = call
        try:
            if fault is not None and fault.errcode is not None:
                raise WeChatApiError(fault.errcode)
            self._call_api(method, api, query, payload)
        except WeChatApiError as error:
            call["errcode"] = error.errcode
            content_type = self.state.media_error_content_type if api == "media/get" else "application/json"
            self._json(error.document(), content_type=content_type)

    def _record(self, call: dict[str, Any]) -> None:
        with self.state.lock:
            self.state.calls.append(call)

    def _call_api(self, method: str, api: str, query: dict[str, str], payload: Any) -> None:
        state = self.state
        if api == "token" and method == "GET":
            answer = state.issue_token(
                "token", query.get("appid"), query.get("secret"), query.get("grant_type")
            )
            self._json(answer)
            return
        if api == "stable_token" and method == "POST":
            if not isinstance(payload, dict):
                raise WeChatApiError(44002)
            force = payload.get("force_refresh") in (True, "true")
            answer = state.issue_token(
                "stable_token", payload.get("appid"), payload.get("secret"), payload.get("grant_type"), force
            )
            self._json(answer)
            return

        state.check_token(query.get("access_token"))
        if api == "media/get" and method == "GET":
            self._serve_media(query.get("media_id"))
            return
        if method == "GET" and api == "menu/get":
            with state.lock:
                menu = state.menu
            if menu is None:
                raise WeChatApiError(46003)
            self._json({"menu": menu})
            return
        if method != "POST":
            raise WeChatApiError(-1)
        if api == "media/upload":
            upload = parse_media_field(self.headers.get("Content-Type") or "", payload)
            self._json(state.upload_media(query.get("type"), upload))
            return
        if not isinstance(payload, dict):
            raise WeChatApiError(44002)
        handlers = {
            "message/custom/send": state.send_custom,
            "message/template/send": state.send_template,
            "menu/create": state.create_menu,
            "message/mass/sendall": state.mass_send_all,
        }
        if api not in handlers:
            raise WeChatApiError(-1)
        self._json(handlers[api](payload))

    def _serve_media(self, media_id: str | None) -> None:
        media = self.state.media_file(media_id)
        assert media_id is not None
        if media.kind == "video":
            host, port = self.server.server_address[:2]
            self._json({"video_url": f"http://{host}:{port}/_media/{media_id}"})
            return
        self._send_file(media_id, media)

    def _serve_media_url(self, media_id: str) -> None:
        with self.state.lock:
            media = self.state.media.get(media_id)
        if media is None:
            self._send(404, b"not found", [("Content-Type", "text/plain")])
            return
        self._send_file(media_id, media)

    def _send_file(self, media_id: str, media: Media) -> None:
        if media.data is not None:
            body, content_type, extension = media.data, media.content_type or "", media.extension or ""
        else:
            file_name, content_type, extension = MEDIA_KINDS[media.kind]
            body = (SAMPLE_MEDIA / file_name).read_bytes()
        self._send(
            200,
            body,
            [
                ("Content-Type", content_type),
                ("Content-disposition", f'attachment; filename="{media_id}.{extension}"'),
                ("Cache-Control", "no-cache, must-revalidate"),
            ],
        )

    # -- control endpoints -----------------------------------------------------------------------------

    def _control(self, method: str, name: str, payload: Any) -> None:
        state = self.state
        document = payload if isinstance(payload, dict) else {}
        try:
            if method == "GET" and name == "calls":
                with state.lock:
                    self._json(list(state.calls))
            elif method == "GET" and name == "sent":
                with state.lock:
                    self._json(list(state.sent))
            elif method == "GET" and name == "mass_sends":
                with state.lock:
                    self._json(list(state.mass_sends))
            elif method == "GET" and name == "clock":
                self._json({"now": state.now()})
            elif method == "POST" and name == "clock":
                with state.lock:
                    state.clock_offset += float(document["advance_seconds"])
                self._json({"now": state.now()})
            elif method == "POST" and name == "media":
                state.register_media(
                    str(document["media_id"]), str(document["kind"]), document.get("created_at")
                )
                self._json({"ok": True})
            elif method == "POST" and name == "users":
                state.set_user(str(document["openid"]), bool(document.get("subscribed", True)))
                self._json({"ok": True})
            elif method == "POST" and name == "interactions":
                state.record_interaction(str(document["openid"]), document.get("at"))
                self._json({"ok": True})
            elif method == "POST" and name == "faults":
                state.add_fault(
                    Fault(
                        api=str(document.get("api", "*")),
                        errcode=document.get("errcode"),
                        http_status=document.get("http_status"),
                        latency_ms=int(document.get("latency_ms", 0)),
                        times=int(document.get("times", 1)),
                    )
                )
                self._json({"ok": True})
            elif method == "POST" and name == "tokens/invalidate":
                state.invalidate_tokens()
                self._json({"ok": True})
            elif method == "POST" and name == "settings":
                if "media_error_content_type" in document:
                    state.media_error_content_type = str(document["media_error_content_type"])
                self._json({"ok": True})
            elif method == "POST" and name == "reset":
                state.reset()
                self._json({"ok": True})
            elif method == "GET" and name == "state":
                with state.lock:
                    self._json({"token_calls": dict(state.token_calls), "users": len(state.users),
                                "media": len(state.media)})  # fmt: skip
            else:
                self._json({"error": f"unknown control endpoint {method} /_emulator/{name}"}, status=404)
        except (KeyError, TypeError, ValueError) as error:
            logger.warning("invalid control request %s /_emulator/%s: %r", method, name, error)
            self._json({"error": f"invalid control request: {error!r}"}, status=400)


def _loggable(api: str, query: dict[str, str], payload: Any) -> Any:
    """Return the request without the app secret or access token, for the call log."""
    if isinstance(payload, dict):
        return {key: value for key, value in payload.items() if key != "secret"}
    return {key: value for key, value in query.items() if key not in ("secret", "access_token")}


def _upload_summary(query: dict[str, str], content_type: str, body: bytes) -> dict[str, Any]:
    """Describe an upload for the call log: its type, file name, size and SHA-256, not its bytes."""
    summary: dict[str, Any] = {"type": query.get("type")}
    try:
        upload = parse_media_field(content_type, body)
    except WeChatApiError:
        return summary
    return summary | {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }


class _EmulatorHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    state: EmulatorState


class WeChatEmulator:
    """The emulator's HTTP server on 127.0.0.1; a context manager that stops it on exit."""

    def __init__(
        self, port: int = 0, app_id: str = DEFAULT_APP_ID, app_secret: str = DEFAULT_APP_SECRET
    ) -> None:
        self.state = EmulatorState(app_id=app_id, app_secret=app_secret)
        self._server = _EmulatorHttpServer(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="wechat-emulator",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.calls)

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.sent)

    def start(self) -> WeChatEmulator:
        self._thread.start()
        logger.info("WeChat emulator listening at %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WeChatEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(
    port: int = 0, app_id: str = DEFAULT_APP_ID, app_secret: str = DEFAULT_APP_SECRET
) -> WeChatEmulator:
    """Start an emulator on 127.0.0.1 (`port=0` picks a free port) and return it, already serving."""
    return WeChatEmulator(port=port, app_id=app_id, app_secret=app_secret).start()
