"""Send pushes to a webhook exactly as the WeChat platform does (`python -m devstack.simulator --help`).

Pushes are signed and, in compatible and safe mode, encrypted by `devstack.wechat_push`. Like
WeChat, the simulator re-sends the same push when the webhook sends no response within 5 seconds, or
responds with anything other than an empty body, `success` or a reply XML. It makes up to 3 retries
and reports every attempt.

Against the local stack the simulator also tells the WeChat emulator what the real platform would
know: media ids that a push refers to, the citizen's follow state and the time of their last
message (which opens the 48-hour customer-service window). It finds the emulator through the local
stack's `GET /_local/info`. `--no-emulator` skips that, for a deployed stack.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from devstack import wechat_push

# WeChat waits 5 s for a response and then retries, at most 3 times.
ANSWER_TIMEOUT_SECONDS = 5.0
MAX_RETRIES = 3
DEFAULT_OPENID = "oLOCAL0citizen00000000000001"

# Pushes whose sender the real platform counts as interacting (opens the 48-hour window).
_INTERACTION_EVENTS = frozenset({"subscribe", "click", "scan"})


@dataclass(frozen=True)
class Credentials:
    """The webhook's WeChat settings, from the same variables as `make local`."""

    token: str
    app_id: str
    encoding_aes_key: str
    original_id: str

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> Credentials:
        environ = dict(os.environ if environ is None else environ)
        return cls(
            token=environ.get("WECHAT_TOKEN", "AAAAA"),
            app_id=environ.get("WECHAT_APP_ID", "wx134c8103faa5a59e"),
            encoding_aes_key=environ.get("WECHAT_ENCODING_AES_KEY", "A" * 43),
            original_id=environ.get("WECHAT_ORIGINAL_ID", "gh_97417a04a28d"),
        )


@dataclass
class Attempt:
    """One HTTP delivery of a push or URL check."""

    number: int
    status: int | None
    body: str
    seconds: float
    accepted: bool
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            outcome = self.error
        else:
            shown = self.body if len(self.body) <= 120 else self.body[:117] + "..."
            outcome = f"HTTP {self.status}: {shown!r}"
        verdict = "accepted" if self.accepted else "not accepted"
        return f"attempt {self.number}: {outcome} after {self.seconds:.2f} s ({verdict})"


def push_accepted(status: int | None, body: str) -> bool:
    """Return whether WeChat counts a response as delivered: HTTP 200 with "", `success` or reply XML."""
    if status != 200:
        return False
    text = body.strip()
    return text in ("", "success") or text.startswith("<xml")


def default_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('LOCAL_PORT', '3000')}/api/wechat"


def new_msg_id() -> str:
    """Return a MsgId like WeChat's: a 64-bit decimal integer."""
    return str(int(time.time() * 1000) * 1000 + secrets.randbelow(1000))


class Simulator:
    """Sends pushes and URL checks to one webhook URL, with WeChat's retries."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        mode: str = "safe",
        emulator: bool = True,
        timeout: float = ANSWER_TIMEOUT_SECONDS,
        retries: int = MAX_RETRIES,
    ) -> None:
        self.url = url
        self.credentials = credentials
        self.mode = mode
        self.timeout = timeout
        self.retries = retries
        self.http = requests.Session()
        self.emulator_url = self._find_emulator() if emulator else None

    def _find_emulator(self) -> str | None:
        parts = urlsplit(self.url)
        try:
            response = self.http.get(f"{parts.scheme}://{parts.netloc}/_local/info", timeout=2)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None
        return response.json().get("emulator_url")

    # -- emulator side effects -------------------------------------------------------------------------

    def _tell_emulator(self, endpoint: str, document: dict[str, Any]) -> None:
        if self.emulator_url is None:
            return
        response = self.http.post(f"{self.emulator_url}/_emulator/{endpoint}", json=document, timeout=5)
        response.raise_for_status()

    def register_media(self, kind: str, media_id: str | None = None) -> str:
        media_id = media_id or f"LOCAL{kind.upper()}_{uuid.uuid4().hex}"
        self._tell_emulator("media", {"media_id": media_id, "kind": kind})
        return media_id

    def record_platform_state(self, msg_type: str, open_id: str, fields: dict[str, Any]) -> None:
        """Tell the emulator what the WeChat platform learns from this push (follows, interactions)."""
        event = str(fields.get("Event", "")).lower()
        if msg_type == "event" and event == "subscribe":
            self._tell_emulator("users", {"openid": open_id, "subscribed": True})
        if msg_type == "event" and event == "unsubscribe":
            self._tell_emulator("users", {"openid": open_id, "subscribed": False})
            return
        if msg_type != "event" or event in _INTERACTION_EVENTS:
            self._tell_emulator("interactions", {"openid": open_id})

    # -- deliveries ------------------------------------------------------------------------------------

    def _deliver(self, method: str, query: dict[str, str], body: str | None, check: Any) -> list[Attempt]:
        attempts: list[Attempt] = []
        for number in range(1, self.retries + 2):
            started = time.monotonic()
            try:
                response = self.http.request(
                    method,
                    self.url,
                    params=query,
                    data=body.encode("utf-8") if body is not None else None,
                    headers={"Content-Type": "text/xml"} if body is not None else {},
                    timeout=self.timeout,
                )
            except requests.Timeout:
                attempt = Attempt(
                    number,
                    None,
                    "",
                    time.monotonic() - started,
                    False,
                    f"no answer within {self.timeout:g} s",
                )
            except requests.ConnectionError as error:
                attempt = Attempt(
                    number, None, "", time.monotonic() - started, False, f"connection failed: {error}"
                )
            else:
                text = response.content.decode("utf-8", errors="replace")
                attempt = Attempt(number, response.status_code, text, time.monotonic() - started,
                                  check(response.status_code, text))  # fmt: skip
            attempts.append(attempt)
            if attempt.accepted:
                break
        return attempts

    def verify(self, echostr: str | None = None) -> list[Attempt]:
        """Send the server URL check; accepted when the webhook echoes `echostr`."""
        echostr = echostr or str(secrets.randbelow(10**18))
        query = wechat_push.build_url_check(self.credentials.token, echostr)
        return self._deliver("GET", query, None, lambda status, text: status == 200 and text == echostr)

    def push(self, msg_type: str, open_id: str = DEFAULT_OPENID, **fields: Any) -> list[Attempt]:
        """Send one push of `msg_type` with WeChat's element names as `fields` (MsgId is added)."""
        if msg_type != "event" and "MsgId" not in fields:
            fields["MsgId"] = int(new_msg_id())
        self.record_platform_state(msg_type, open_id, fields)
        xml = wechat_push.message_xml(
            msg_type, open_id, self.credentials.original_id, int(time.time()), **fields
        )
        request = wechat_push.build_push(
            xml,
            mode=self.mode,
            token=self.credentials.token,
            encoding_aes_key=self.credentials.encoding_aes_key,
            app_id=self.credentials.app_id,
        )
        return self._deliver("POST", request.query, request.body, push_accepted)

    def media_fields(self, msg_type: str, media_id: str | None, extra_16k: bool = False) -> dict[str, Any]:
        """Register a push's media with the emulator and return its XML fields."""
        if msg_type == "image":
            media_id = self.register_media("image", media_id)
            pic_url = f"{self.emulator_url}/_media/{media_id}" if self.emulator_url else ""
            return {"PicUrl": pic_url, "MediaId": media_id}
        if msg_type == "voice":
            fields: dict[str, Any] = {"MediaId": self.register_media("voice", media_id), "Format": "amr"}
            if extra_16k:
                fields["MediaId16K"] = self.register_media("voice16k")
            return fields
        return {
            "MediaId": self.register_media(msg_type, media_id),
            "ThumbMediaId": self.register_media("thumb"),
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.simulator",
        description="Send WeChat pushes to a webhook, signed and encrypted as the WeChat platform sends them.",
    )
    parser.add_argument(
        "--url", default=default_url(), help="webhook URL (default: the local stack's /api/wechat)"
    )
    parser.add_argument("--mode", choices=wechat_push.MODES, default=os.environ.get("WECHAT_MESSAGE_MODE", "safe"),
                        help="message encryption mode (default: $WECHAT_MESSAGE_MODE or safe)")  # fmt: skip
    parser.add_argument("--openid", default=DEFAULT_OPENID, help="the citizen's OpenID (FromUserName)")
    parser.add_argument("--no-emulator", action="store_true",
                        help="do not register media or interactions with the WeChat emulator (deployed stacks)")  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=ANSWER_TIMEOUT_SECONDS, help="seconds to wait per attempt"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="server URL check (GET with echostr)")
    verify.add_argument("--echostr", help="value to echo (default: random)")

    text = commands.add_parser("text", help="text message")
    text.add_argument("content")

    for kind in ("image", "voice", "video", "shortvideo"):
        media = commands.add_parser(
            kind, help=f"{kind} message; the media id is registered with the emulator"
        )
        media.add_argument("--media-id", help="MediaId (default: a new id)")
        if kind == "voice":
            media.add_argument("--recognition", help="WeChat's speech recognition text")
            media.add_argument("--with-16k", action="store_true", help="add a MediaId16K copy")

    location = commands.add_parser("location", help="location message (GCJ-02 degrees)")
    location.add_argument("--lat", type=float, default=23.0207, help="latitude (Location_X)")
    location.add_argument("--lon", type=float, default=113.7518, help="longitude (Location_Y)")
    location.add_argument("--scale", type=int, default=15)
    location.add_argument("--label", default="广东省东莞市南城街道")

    link = commands.add_parser("link", help="link message")
    link.add_argument("--title", default="示例链接")
    link.add_argument("--description", default="")
    link.add_argument("--link-url", default="https://example.invalid/article")

    event = commands.add_parser(
        "event", help="event push: subscribe, unsubscribe, CLICK, VIEW, SCAN, LOCATION"
    )
    event.add_argument("name", help="Event value, for example subscribe or CLICK")
    event.add_argument("--key", help="EventKey (menu key, qrscene_..., or the VIEW URL)")
    return parser


def _fields(simulator: Simulator, arguments: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    command = arguments.command
    if command == "text":
        return "text", {"Content": arguments.content}
    if command in ("image", "video", "shortvideo"):
        return command, simulator.media_fields(command, arguments.media_id)
    if command == "voice":
        fields = simulator.media_fields("voice", arguments.media_id, extra_16k=arguments.with_16k)
        if arguments.recognition is not None:
            fields["Recognition"] = arguments.recognition
        return "voice", fields
    if command == "location":
        return "location", {"Location_X": arguments.lat, "Location_Y": arguments.lon, "Scale": arguments.scale,
                            "Label": arguments.label}  # fmt: skip
    if command == "link":
        return "link", {
            "Title": arguments.title,
            "Description": arguments.description,
            "Url": arguments.link_url,
        }
    fields = {"Event": arguments.name}
    if arguments.key is not None:
        fields["EventKey"] = arguments.key
    return "event", fields


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    simulator = Simulator(
        arguments.url,
        Credentials.from_environ(),
        mode=arguments.mode,
        emulator=not arguments.no_emulator,
        timeout=arguments.timeout,
    )
    if arguments.command == "verify":
        attempts = simulator.verify(arguments.echostr)
    else:
        msg_type, fields = _fields(simulator, arguments)
        attempts = simulator.push(msg_type, arguments.openid, **fields)
    for attempt in attempts:
        print(attempt.describe())
    return 0 if attempts and attempts[-1].accepted else 1


if __name__ == "__main__":
    sys.exit(main())
