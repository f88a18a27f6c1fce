"""`make demo`: the main job end to end on the local stack, with a readable report.

It starts the local stack and plays the scripted conversation in events/demo/conversation.json: two
citizens; text, photo, voice, video and location; a WeChat retry of the same push; a progress query;
staff handling through the staff API; a rating; two consultations answered at once from the knowledge
base, one of them handed to a person with 「人工」; an announcement published to every follower. Then
it waits until the pipeline settles and prints each ticket with its messages and media, the S3
objects, every message delivered to each citizen and the mass sends.
It exits 1 when any check fails, so a broken stage cannot pass unnoticed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from devstack import wechat_push
from devstack.api_gateway import SigV4RequestAuth
from devstack.runner import LocalStack, LocalStackConfig
from devstack.simulator import Credentials, Simulator
from devstack.template import ROOT

SCRIPT_PATH = ROOT / "events" / "demo" / "conversation.json"
STAFF_ACTOR = "demo-staff-nancheng-01"
SETTLE_TIMEOUT_SECONDS = 60.0


@dataclass
class DemoRun:
    """The demo's record: pushes sent, staff responses, report lines and failed checks."""

    pushes: list[dict[str, Any]] = field(default_factory=list)
    staff_responses: list[dict[str, Any]] = field(default_factory=list)
    announcement: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    report_lines: list[str] = field(default_factory=list)

    def check(self, passed: bool, description: str) -> None:
        self.report_lines.append(f"  [{'PASS' if passed else 'FAIL'}] {description}")
        if not passed:
            self.failures.append(description)

    def say(self, line: str = "") -> None:
        self.report_lines.append(line)


class Conversation:
    """Plays the script's steps against a running local stack."""

    def __init__(self, stack: LocalStack, script: dict[str, Any], run: DemoRun) -> None:
        self.stack = stack
        self.script = script
        self.run = run
        self.citizens: dict[str, str] = script["citizens"]
        config = stack.config
        self.credentials = Credentials(
            token=config.wechat_token,
            app_id=config.app_id,
            encoding_aes_key=config.encoding_aes_key,
            original_id=config.original_id,
        )
        self.simulator = Simulator(stack.webhook_url, self.credentials, mode=config.message_mode)
        self.http = requests.Session()
        self._last_push: wechat_push.PushRequest | None = None

    # -- citizens --------------------------------------------------------------------------------------

    def _fields(self, step: dict[str, Any]) -> dict[str, Any]:
        fields = dict(step.get("fields", {}))
        msg_type = step["push"]
        if msg_type in {"image", "voice", "video", "shortvideo"}:
            fields.update(self.simulator.media_fields(msg_type, None, extra_16k=bool(step.get("media_16k"))))
        if msg_type != "event":
            fields.setdefault("MsgId", int(time.time() * 1000) * 1000 + len(self.run.pushes))
        return fields

    def _deliver(self, push: wechat_push.PushRequest) -> int:
        response = self.http.post(
            self.stack.webhook_url,
            params=push.query,
            data=push.body.encode("utf-8"),
            headers={"Content-Type": "text/xml"},
            timeout=5,
        )
        return response.status_code if response.text in {"success", ""} else -response.status_code

    def push(self, citizen: str, step: dict[str, Any]) -> None:
        open_id = self.citizens[citizen]
        if step["push"] == "retry_previous":
            assert self._last_push is not None, "retry_previous needs an earlier push"
            status = self._deliver(self._last_push)
            self.run.pushes.append({"citizen": citizen, "msg_type": "retry", "status": status})
            return

        msg_type = step["push"]
        fields = self._fields(step)
        self.simulator.record_platform_state(msg_type, open_id, fields)
        xml = wechat_push.message_xml(
            msg_type, open_id, self.credentials.original_id, int(time.time()), **fields
        )
        self._last_push = wechat_push.build_push(
            xml,
            mode=self.stack.config.message_mode,
            token=self.credentials.token,
            encoding_aes_key=self.credentials.encoding_aes_key,
            app_id=self.credentials.app_id,
        )
        status = self._deliver(self._last_push)
        self.run.pushes.append({"citizen": citizen, "msg_type": msg_type, "status": status})

    # -- staff -----------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        # The staff API's routes are AWS_IAM, so the local API gateway requires a SigV4 signature.
        return self.http.request(
            method, f"{self.stack.url}/api{path}", timeout=15, auth=SigV4RequestAuth(), **kwargs
        )

    def ticket_ids(self, citizen: str) -> list[str]:
        response = self.api("GET", "/tickets", params={"citizen": self.citizens[citizen]})
        if response.status_code != 200:
            return []
        # Oldest first: a citizen's first ticket is the one the script talks about.
        return sorted(item["ticket_id"] for item in response.json().get("items", []))

    def settle(self) -> None:
        """Wait until every queue is empty and no function runs; a stuck stage fails the demo."""
        try:
            self.stack.wait_idle(SETTLE_TIMEOUT_SECONDS)
        except TimeoutError as err:
            self.run.check(False, f"the pipeline settled ({err})")

    def photo_keys(self, ticket_id: str) -> list[str]:
        """Return the staff-copy keys of the ticket's photos, which a reply may attach."""
        ticket = self.api("GET", f"/tickets/{ticket_id}").json()
        return [
            message["media"]["s3_key"]
            for message in ticket.get("messages", [])
            if message.get("msg_type") == "image" and (message.get("media") or {}).get("s3_key")
        ]

    def staff_action(self, citizen: str, step: dict[str, Any]) -> None:
        self.settle()
        tickets = self.ticket_ids(citizen)
        if not tickets:
            self.run.staff_responses.append(
                {"action": step["staff"], "status": None, "body": "no ticket found"}
            )
            return
        body = {"action": step["staff"], "actor": STAFF_ACTOR, **step.get("body", {})}
        if step.get("attach_citizen_photo"):
            body["media"] = self.photo_keys(tickets[0])
        response = self.api("POST", f"/tickets/{tickets[0]}/actions", json=body)
        self.run.staff_responses.append(
            {"action": step["staff"], "status": response.status_code, "body": response.text[:300]}
        )

    def publish_announcement(self, step: dict[str, Any]) -> None:
        """Create the announcement and publish it through the staff API; keep the published record."""
        self.settle()
        created = self.api("POST", "/announcements", json={**step["announcement"], "actor": STAFF_ACTOR})
        if created.status_code != 200:
            self.run.announcement = {"status": created.status_code, "body": created.text[:300]}
            return
        announcement_id = created.json()["announcement_id"]
        published = self.api("POST", f"/announcements/{announcement_id}/publish", json={"actor": STAFF_ACTOR})
        self.run.announcement = {"status": published.status_code, **published.json()}

    def play(self) -> None:
        for step in self.script["steps"]:
            if step.get("settle"):
                self.settle()
            elif "announcement" in step:
                self.publish_announcement(step)
            elif "staff" in step:
                self.staff_action(step["citizen"], step)
            else:
                self.push(step["citizen"], step)
        self.settle()


# -- report ------------------------------------------------------------------------------------------


def _sent_text(entry: dict[str, Any]) -> str:
    payload = entry.get("payload", {})
    if entry.get("api", "").endswith("custom/send"):
        kind = payload.get("msgtype")
        if kind == "text":
            return str(payload.get("text", {}).get("content", ""))
        return f"[{kind}]"
    data = payload.get("data", {})
    return "[模板消息] " + "；".join(f"{key}={value.get('value')}" for key, value in data.items())


def _message_line(message: dict[str, Any]) -> str:
    kind = message.get("msg_type")
    if message.get("media"):
        media = message["media"]
        sha = str(media.get("sha256") or "")[:12]
        detail = f"{media.get('status', 'stored')} {media.get('content_type')} {media.get('size')} bytes sha256 {sha}…"
    elif message.get("location"):
        location = message["location"]
        detail = f"{location.get('latitude')}, {location.get('longitude')} {location.get('label', '')}"
    else:
        detail = str(message.get("content", ""))
    return f"      - {kind}: {detail}"


def _history_line(entry: dict[str, Any]) -> str:
    detail = entry.get("detail") or {}
    facts = [f"{key}={detail[key]}" for key in ("kind", "channel", "errcode", "action") if key in detail]
    change = ""
    if entry.get("before_status") or entry.get("after_status"):
        change = f" {entry.get('before_status') or '-'} → {entry.get('after_status') or '-'}"
    return f"      - {entry.get('at')} (UTC) {entry.get('entry_type')} by {entry.get('actor')}{change} {' '.join(facts)}"


def _report_tickets(conversation: Conversation, run: DemoRun) -> dict[str, dict[str, Any]]:
    tickets: dict[str, dict[str, Any]] = {}
    run.say("Tickets")
    for citizen in conversation.citizens:
        for ticket_id in conversation.ticket_ids(citizen):
            response = conversation.api("GET", f"/tickets/{ticket_id}")
            if response.status_code != 200:
                run.say(f"  {ticket_id}: staff API answered {response.status_code}")
                continue
            ticket = response.json()
            tickets.setdefault(citizen, ticket)
            run.say(
                f"  {ticket_id}  citizen {citizen}  status {ticket.get('status')}  "
                f"type {ticket.get('appeal_type') or '-'}  department {ticket.get('department_name') or '-'}"
            )
            location = ticket.get("location") or {}
            where = f"{location.get('latitude')}, {location.get('longitude')} {location.get('label', '')}"
            run.say(f"    location: {where if location else '-'}")
            run.say(f"    messages ({len(ticket.get('messages', []))}):")
            for message in ticket.get("messages", []):
                run.say(_message_line(message))
            run.say(f"    history ({len(ticket.get('history', []))} entries):")
            for entry in ticket.get("history", []):
                run.say(_history_line(entry))
    return tickets


def _report_objects(stack: LocalStack, run: DemoRun) -> list[dict[str, Any]]:
    assert stack.stack is not None
    s3 = stack.stack.client("s3")
    bucket = stack.stack.ref("MediaBucket")
    objects = []
    run.say("")
    run.say(f"S3 objects in {bucket}")
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        head = s3.head_object(Bucket=bucket, Key=item["Key"])
        objects.append({"key": item["Key"], "size": item["Size"], "content_type": head.get("ContentType")})
        encryption = head.get("ServerSideEncryption", "none")
        run.say(f"  {item['Key']}  {item['Size']} bytes  {head.get('ContentType')}  {encryption}")
    return objects


def _report_sent(conversation: Conversation, run: DemoRun) -> dict[str, list[str]]:
    sent = conversation.http.get(f"{conversation.stack.url}/_local/wechat/sent", timeout=5).json()
    by_citizen: dict[str, list[str]] = {name: [] for name in conversation.citizens}
    names = {open_id: name for name, open_id in conversation.citizens.items()}
    run.say("")
    run.say("Messages delivered to citizens")
    for entry in sent:
        name = names.get(entry.get("touser", ""), entry.get("touser", ""))
        text = _sent_text(entry)
        by_citizen.setdefault(name, []).append(text)
    for name, texts in by_citizen.items():
        run.say(f"  to {name}:")
        for text in texts:
            run.say("    > " + text.replace("\n", "\n      "))
    return by_citizen


def _report_announcement(stack: LocalStack, run: DemoRun) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    mass_sends = list(stack.emulator.state.mass_sends)
    run.say("")
    run.say("Announcements sent to every follower (message/mass/sendall)")
    record = run.announcement
    run.say(
        f"  {record.get('announcement_id', '-')}  status {record.get('status')}  msg_id {record.get('msg_id')}"
    )
    for send in record.get("sends", []):
        run.say(f"    send at {send['at']} by {send['actor']}: errcode {send['errcode']} {send['errmsg']}")
    for sent in mass_sends:
        content = sent["payload"].get("text", {}).get("content", "")
        run.say("    > " + content.replace("\n", "\n      "))
    return mass_sends


def _knowledge_checks(
    conversation: Conversation, run: DemoRun, tickets: dict[str, dict[str, Any]], sent: dict[str, list[str]]
) -> None:
    zhang, chen = tickets.get("zhang", {}), tickets.get("chen", {})
    run.check(
        zhang.get("status") == "replied" and (zhang.get("auto_answer") or {}).get("entry_id") == "kb-0004",
        f"zhang's consultation was answered from the knowledge base (status {zhang.get('status')})",
    )
    run.check(
        any("住房公积金" in text and "「人工」" in text for text in sent.get("zhang", [])),
        "zhang received the answer with the offer of a person",
    )
    run.check(
        chen.get("status") == "submitted" and bool(chen.get("handed_off_at")),
        f"chen's 「人工」 handed the answered consultation to staff (status {chen.get('status')})",
    )
    chen_id = str(chen.get("ticket_id"))
    run.check(
        any("转人工服务" in text and chen_id in text for text in sent.get("chen", [])),
        "chen received the acknowledgement of the handoff",
    )


def _announcement_checks(run: DemoRun, mass_sends: list[dict[str, Any]]) -> None:
    record = run.announcement
    run.check(
        record.get("status") == "published" and bool(record.get("msg_id")),
        f"the announcement was published (status {record.get('status')})",
    )
    run.check(
        len(mass_sends) == 1 and mass_sends[0]["payload"]["filter"] == {"is_to_all": True},
        f"WeChat got one mass send to every follower (found {len(mass_sends)})",
    )
    run.check(
        [send.get("errcode") for send in record.get("sends", [])] == [0],
        "the send was recorded with WeChat's result",
    )


def _checks(
    conversation: Conversation,
    run: DemoRun,
    tickets: dict[str, dict[str, Any]],
    objects: list[dict[str, Any]],
    sent: dict[str, list[str]],
) -> None:
    run.say("")
    run.say("Checks")
    run.check(all(push["status"] == 200 for push in run.pushes), "WeChat received `success` for every push")
    run.check(
        all(response["status"] == 200 for response in run.staff_responses),
        "the staff API accepted accept, dispatch, reply and close",
    )
    li, wang = tickets.get("li", {}), tickets.get("wang", {})
    li_types = sorted(message.get("msg_type") for message in li.get("messages", []))
    run.check(
        li_types == ["image", "location", "text", "voice"],
        f"li's ticket holds text, photo, voice and location exactly once (found {li_types})",
    )
    wang_types = sorted(message.get("msg_type") for message in wang.get("messages", []))
    run.check(
        wang_types == ["shortvideo", "text", "video"],
        f"wang's ticket holds text, video and short video (found {wang_types})",
    )
    run.check(li.get("status") == "rated", f"li's ticket was handled and rated (status {li.get('status')})")
    run.check(
        wang.get("status") == "submitted", f"wang's ticket awaits acceptance (status {wang.get('status')})"
    )
    media_types = {str(item["content_type"]) for item in objects}
    for expected in ("image/jpeg", "audio/amr", "video/mp4"):
        run.check(expected in media_types, f"S3 holds an object of type {expected}")
    run.check(
        any(kind in media_types for kind in ("audio/mpeg", "audio/ogg")),
        "S3 holds a browser-playable voice copy",
    )
    for name, ticket in tickets.items():
        ticket_id = str(ticket.get("ticket_id"))
        run.check(
            any(ticket_id in text for text in sent.get(name, [])),
            f"{name} received an acknowledgement with ticket number {ticket_id}",
        )
    reply_text = next(
        step["body"]["text"] for step in conversation.script["steps"] if step.get("staff") == "reply"
    )
    run.check(any(reply_text in text for text in sent.get("li", [])), "li received the department's answer")
    run.check("[image]" in sent.get("li", []), "li received the photo attached to the answer")
    run.check(
        any("工单" in text and "：" in text for text in sent.get("li", [])[1:]),
        "li's progress query was answered",
    )


def run_demo(config: LocalStackConfig, on_stack: Callable[[LocalStack], None] | None = None) -> DemoRun:
    """Start a local stack, play the conversation and return what was observed and checked."""
    run = DemoRun()
    script = json.loads(SCRIPT_PATH.read_text(encoding="utf-8"))
    started = time.monotonic()
    with LocalStack(config) as stack:
        if on_stack is not None:
            on_stack(stack)
        conversation = Conversation(stack, script, run)
        conversation.play()
        tickets = _report_tickets(conversation, run)
        objects = _report_objects(stack, run)
        sent = _report_sent(conversation, run)
        mass_sends = _report_announcement(stack, run)
        _checks(conversation, run, tickets, objects, sent)
        _knowledge_checks(conversation, run, tickets, sent)
        _announcement_checks(run, mass_sends)
    run.say("")
    run.say(f"Demo finished in {time.monotonic() - started:.1f} s with {len(run.failures)} failed check(s).")
    return run


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    config = LocalStackConfig.from_environ()
    print(f"Starting the local stack in {config.message_mode} mode ...", flush=True)
    run = run_demo(config)
    print("\n".join(run.report_lines), flush=True)
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
