"""Write the API Gateway events in events/wechat/ for `sam local invoke -e` and the tests.

    python -m devstack.make_events          # rewrite the files
    python -m devstack.make_events --check  # exit 1 when a committed file differs from the generator

The events are signed (and, in safe mode, encrypted) with the default local credentials, which are
the official WeChat test values of vector V3 (Token AAAAA, EncodingAESKey 43 x "A", AppID
wx134c8103faa5a59e, original id gh_97417a04a28d). Timestamps, nonces and the encryption's random
prefix are fixed, so the output is the same on every run. A handler accepts a push only within its
replay window (300 s by default): invoke these with REPLAY_WINDOW_SECONDS=0, or pin the clock.

- url_check.json: the URL check of official vector V1 (answer: 4375120948345356249);
- plain/<kind>.json and safe/<kind>.json: one POST per message type and event type.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from devstack.wechat_push import api_gateway_event, build_push, deterministic_random, message_xml

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events" / "wechat"
WEBHOOK_PATH = "/wechat"

TOKEN = "AAAAA"  # noqa: S105 - the public test Token of official vector V3
ENCODING_AES_KEY = "A" * 43
APP_ID = "wx134c8103faa5a59e"
ORIGINAL_ID = "gh_97417a04a28d"
OPEN_ID = "oDEVSTACKcitizen000000000001"
BASE_TIME = 1733300000  # 2024-12-04 08:13:20 UTC
MODES = ("plain", "safe")

# Official vector V1 (URL check).
URL_CHECK = {
    "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
    "echostr": "4375120948345356249",
    "timestamp": "1714036504",
    "nonce": "1514711492",
}

# kind -> (MsgType, fields). Message kinds carry a MsgId; events do not.
PUSHES: dict[str, tuple[str, dict[str, str | int | float]]] = {
    "text": (
        "text",
        {"Content": "小区门口的路灯坏了三天，晚上很黑，请尽快维修。", "MsgId": 24877465521234567},
    ),
    "image": (
        "image",
        {
            "PicUrl": "http://mmbiz.qpic.cn/local/streetlight.jpg",
            "MediaId": "local-media-image-0001",
            "MsgId": 24877465521234568,
        },
    ),
    "voice": (
        "voice",
        {
            "MediaId": "local-media-voice-0001",
            "Format": "amr",
            "MediaId16K": "local-media-voice16k-0001",
            "Recognition": "路灯坏了请派人来修",
            "MsgId": 24877465521234569,
        },
    ),
    "video": (
        "video",
        {
            "MediaId": "local-media-video-0001",
            "ThumbMediaId": "local-media-thumb-0001",
            "MsgId": 24877465521234570,
        },
    ),
    "shortvideo": (
        "shortvideo",
        {
            "MediaId": "local-media-short-0001",
            "ThumbMediaId": "local-media-thumb-0002",
            "MsgId": 24877465521234571,
        },
    ),
    "location": (
        "location",
        {
            "Location_X": 23.020673,
            "Location_Y": 113.751799,
            "Scale": 15,
            "Label": "广东省东莞市莞城街道市民服务中心",
            "MsgId": 24877465521234572,
        },
    ),
    "link": (
        "link",
        {
            "Title": "噪音扰民情况说明",
            "Description": "夜间施工噪音记录",
            "Url": "https://mp.weixin.qq.com/s/local-article",
            "MsgId": 24877465521234573,
        },
    ),
    "event_subscribe": ("event", {"Event": "subscribe"}),
    "event_subscribe_qrscene": (
        "event",
        {"Event": "subscribe", "EventKey": "qrscene_district-03", "Ticket": "gQLocalTicketSubscribe"},
    ),
    "event_unsubscribe": ("event", {"Event": "unsubscribe"}),
    "event_scan": ("event", {"Event": "SCAN", "EventKey": "district-03", "Ticket": "gQLocalTicketScan"}),
    "event_location": (
        "event",
        {"Event": "LOCATION", "Latitude": 23.020673, "Longitude": 113.751799, "Precision": 65.0},
    ),
    "event_click": ("event", {"Event": "CLICK", "EventKey": "MENU_QUERY"}),
    "event_view": (
        "event",
        {"Event": "VIEW", "EventKey": "https://mp.weixin.qq.com/local-guide", "MenuId": "1"},
    ),
    "event_templatesendjobfinish": (
        "event",
        {"Event": "TEMPLATESENDJOBFINISH", "MsgID": 200163836, "Status": "success"},
    ),
}


def push_time(kind: str) -> int:
    return BASE_TIME + list(PUSHES).index(kind)


def push_event(kind: str, mode: str) -> dict[str, Any]:
    msg_type, fields = PUSHES[kind]
    created = push_time(kind)
    xml = message_xml(msg_type, OPEN_ID, ORIGINAL_ID, created, **fields)
    with deterministic_random(f"{mode}/{kind}"):
        push = build_push(
            xml,
            mode=mode,
            token=TOKEN,
            encoding_aes_key=ENCODING_AES_KEY,
            app_id=APP_ID,
            timestamp=created,
            nonce=str(1000000000 + created % 1000000),
        )
    return api_gateway_event("POST", WEBHOOK_PATH, push.query, push.body)


def url_check_event() -> dict[str, Any]:
    return api_gateway_event("GET", WEBHOOK_PATH, dict(URL_CHECK), None)


def generate() -> dict[Path, str]:
    """Return every event file's path and content."""
    files = {EVENTS_DIR / "url_check.json": url_check_event()}
    for mode in MODES:
        for kind in PUSHES:
            files[EVENTS_DIR / mode / f"{kind}.json"] = push_event(kind, mode)
    return {path: json.dumps(event, ensure_ascii=False, indent=2) + "\n" for path, event in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, content in generate().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run python -m devstack.make_events):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
