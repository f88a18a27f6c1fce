"""Delivering the scenario's pushes to the webhook as WeChat does: signed, encrypted, repeated.

One thread per citizen (at most `threads` at a time) posts that citizen's pushes in order. A push
planned with several deliveries gets them either all at once (WeChat retrying while our answer is
pending) or one after another. A push that no delivery got accepted is delivered again, up to
`MAX_EXTRA_DELIVERIES` more times, and counted in `webhook_errors`: WeChat itself gives up after
three retries, but the harness measures what happens to accepted pushes.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from devstack.reliability.scenario import PlannedPush
from devstack.runner import LocalStack
from devstack.wechat_push import build_push, message_xml

MAX_EXTRA_DELIVERIES = 8
# Longer than WeChat's 5 s so that a slow shared test machine does not add retries of its own.
ANSWER_TIMEOUT_SECONDS = 15

logger = logging.getLogger(__name__)


def push_xml(push: PlannedPush, original_id: str, create_time: int) -> str:
    """Return the XML of one push as WeChat renders it."""
    fields: dict[str, Any]
    if push.kind == "subscribe":
        return message_xml("event", push.open_id, original_id, create_time, Event="subscribe", EventKey="")
    if push.kind in ("text", "submit", "query"):
        content = {"submit": "提交", "query": "查询"}.get(push.kind, push.content)
        fields = {"Content": content}
    elif push.kind == "image":
        fields = {"PicUrl": f"http://127.0.0.1/_media/{push.media_id}", "MediaId": push.media_id or ""}
    elif push.kind == "voice":
        fields = {"MediaId": push.media_id or "", "Format": "amr"}
    elif push.kind == "video":
        fields = {"MediaId": push.media_id or "", "ThumbMediaId": f"{push.media_id}t"}
    elif push.kind == "location":
        fields = {"Location_X": 23.0207, "Location_Y": 113.7518, "Scale": 15, "Label": "广东省东莞市莞城街道"}
    else:
        raise ValueError(f"unknown push kind {push.kind!r}")
    message_type = "text" if push.kind in ("submit", "query") else push.kind
    return message_xml(message_type, push.open_id, original_id, create_time, **fields, MsgId=push.msg_id or 0)


def _accepted(response: requests.Response) -> bool:
    body = response.text.strip()
    return response.status_code == 200 and (body in ("", "success") or body.startswith("<xml>"))


class Deliverer:
    """Posts pushes to one local stack's webhook."""

    def __init__(self, stack: LocalStack, threads: int = 24, max_backlog: int | None = None) -> None:
        self._stack = stack
        self._threads = threads
        self._max_backlog = max_backlog
        self._backlog = 0
        self._backlog_read_at = 0.0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._delivered = 0

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def _register(self, push: PlannedPush) -> None:
        """Register with the emulator what WeChat has before the push: the media and the citizen's message."""
        emulator = self._stack.emulator
        assert emulator is not None
        state = emulator.state
        if push.kind == "subscribe":
            state.set_user(push.open_id, subscribed=True)
        else:
            state.record_interaction(push.open_id)
        if push.media_id and push.kind in ("image", "voice"):
            state.register_media(push.media_id, push.kind)
        elif push.media_id and push.kind == "video":
            state.register_media(push.media_id, "video")
            state.register_media(f"{push.media_id}t", "thumb")

    def _post(self, push: PlannedPush, xml: str) -> bool:
        config = self._stack.config
        request = build_push(
            xml,
            mode=push.mode,
            token=config.wechat_token,
            encoding_aes_key=config.encoding_aes_key,
            app_id=config.app_id,
        )
        try:
            response = self._http().post(
                self._stack.webhook_url,
                params=request.query,
                data=request.body.encode("utf-8"),
                headers={"Content-Type": "text/xml"},
                timeout=ANSWER_TIMEOUT_SECONDS,
            )
        except requests.RequestException:
            return False
        return _accepted(response)

    def _wait_for_backlog(self) -> None:
        """Wait while the inbound queue holds more than `max_backlog` messages (read at most twice a second).

        moto's SQS slows down as a FIFO queue grows, and every other call to moto with it, so a
        backlog of thousands of pushes would measure moto rather than the functions.
        """
        if self._max_backlog is None:
            return
        assert self._stack.stack is not None
        while True:
            with self._lock:
                if time.monotonic() - self._backlog_read_at > 0.5:
                    attributes = self._stack.stack.client("sqs").get_queue_attributes(
                        QueueUrl=self._stack.stack.ref("InboundQueue"),
                        AttributeNames=["ApproximateNumberOfMessages"],
                    )["Attributes"]
                    self._backlog = int(attributes["ApproximateNumberOfMessages"])
                    self._backlog_read_at = time.monotonic()
                if self._backlog <= self._max_backlog:
                    return
            time.sleep(0.5)

    def deliver(self, push: PlannedPush) -> None:
        """Deliver one push `repeats` times, concurrently or in sequence, then until it is accepted."""
        self._register(push)
        xml = push_xml(push, self._stack.config.original_id, int(time.time()))
        if push.concurrent:
            with ThreadPoolExecutor(max_workers=push.repeats) as pool:
                outcomes = list(pool.map(lambda _: self._post(push, xml), range(push.repeats)))
            push.concurrent_deliveries += push.repeats
        else:
            outcomes = [self._post(push, xml) for _ in range(push.repeats)]
        push.deliveries += push.repeats
        push.accepted = any(outcomes)
        extra = 0
        while not push.accepted and extra < MAX_EXTRA_DELIVERIES:
            push.webhook_errors += 1
            time.sleep(0.5)
            push.accepted = self._post(push, xml)
            push.deliveries += 1
            extra += 1
        if not push.accepted:
            logger.warning("push %d was never accepted by the webhook", push.index)
        with self._lock:
            self._delivered += 1
            if self._delivered % 100 == 0:
                logger.info("%d pushes delivered", self._delivered)

    def deliver_all(self, pushes_by_citizen: dict[str, list[PlannedPush]]) -> None:
        """Deliver each citizen's pushes in order, citizens in parallel."""

        def citizen(pushes: list[PlannedPush]) -> None:
            for push in pushes:
                self._wait_for_backlog()
                self.deliver(push)

        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            list(pool.map(citizen, pushes_by_citizen.values()))
