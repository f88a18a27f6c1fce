"""What the harness checks after a run, on a snapshot read straight from moto and the emulator.

- Messages: every accepted content push (by MsgId) is in exactly one message item of one ticket.
  A MsgId with no item is lost; every item beyond the first for a MsgId is a duplicate.
- Media: every stored image, voice and video message has its object in S3, and the object's SHA-256
  equals both the one its message item records and that of the bytes the emulator served.
- Notices: the ledger (`NOTICE#...`) records how many WeChat sends each notice made: its confirmed
  customer-service parts (`next_part`) plus one template message when its channel is `template`.
  Their sum must equal the number of messages the emulator delivered. Fewer delivered, or a notice
  still `sending`, counts as lost; more counts as duplicated. A customer-service send whose answer
  never arrived is sent again by design; such resends are counted apart (`resent_after_unknown`).
  Every citizen whose follow was accepted has one welcome notice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from devstack.reliability.scenario import PlannedPush
from devstack.runner import LocalStack

_deserializer = TypeDeserializer()


@dataclass
class Snapshot:
    """The stored state the checks read: table items, S3 digests and the emulator's sent log."""

    items: list[dict[str, Any]]
    object_digests: dict[str, str]
    sent: list[dict[str, Any]]

    def messages(self) -> list[dict[str, Any]]:
        return [item for item in self.items if str(item.get("SK", "")).startswith("MSG#")]

    def notices(self) -> list[dict[str, Any]]:
        return [item for item in self.items if str(item.get("PK", "")).startswith("NOTICE#")]

    def history(self) -> list[dict[str, Any]]:
        return [item for item in self.items if str(item.get("SK", "")).startswith("HIST#")]


@dataclass
class Findings:
    """The outcome of the checks; `problems` names every lost or duplicated item."""

    tickets: int = 0
    messages: int = 0
    media_files: int = 0
    notices: int = 0
    notices_by_state: dict[str, int] = field(default_factory=dict)
    wechat_sends: int = 0
    lost_messages: int = 0
    duplicated_messages: int = 0
    lost_media: int = 0
    bad_checksums: int = 0
    lost_notices: int = 0
    duplicated_notices: int = 0
    resent_after_unknown: int = 0
    undeliverable: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lost_messages + self.lost_media + self.lost_notices

    @property
    def duplicated(self) -> int:
        return self.duplicated_messages + self.duplicated_notices


def _scan(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.stack is not None
    paginator = stack.stack.client("dynamodb").get_paginator("scan")
    table = stack.stack.ref("TicketsTable")
    items = []
    for page in paginator.paginate(TableName=table, ConsistentRead=True):
        items.extend(
            {key: _deserializer.deserialize(value) for key, value in item.items()} for item in page["Items"]
        )
    return items


def take_snapshot(stack: LocalStack) -> Snapshot:
    """Read the table, the media objects and the sent log directly from moto and the emulator."""
    assert stack.stack is not None
    assert stack.emulator is not None
    items = _scan(stack)
    s3 = stack.stack.client("s3")
    bucket = stack.stack.ref("MediaBucket")
    digests = {}
    for item in items:
        media = item.get("media") if str(item.get("SK", "")).startswith("MSG#") else None
        key = media.get("s3_key") if isinstance(media, dict) else None
        if key:
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            digests[key] = hashlib.sha256(body).hexdigest()
    return Snapshot(items=items, object_digests=digests, sent=stack.emulator.sent)


def check(snapshot: Snapshot, pushes: list[PlannedPush], served_digests: dict[str, str]) -> Findings:
    """Check the invariants; `served_digests` maps a push kind to the SHA-256 of the file served."""
    findings = Findings()
    _check_messages(snapshot, pushes, served_digests, findings)
    _check_notices(snapshot, pushes, findings)
    return findings


def _check_messages(
    snapshot: Snapshot, pushes: list[PlannedPush], served_digests: dict[str, str], findings: Findings
) -> None:
    messages = snapshot.messages()
    findings.messages = len(messages)
    findings.tickets = len({item["ticket_id"] for item in messages})
    by_msg_id: dict[str, list[dict[str, Any]]] = {}
    for item in messages:
        by_msg_id.setdefault(str(item.get("msg_id")), []).append(item)
    for push in pushes:
        if not push.is_content or not push.accepted:
            continue
        found = by_msg_id.get(str(push.msg_id), [])
        if not found:
            findings.lost_messages += 1
            findings.problems.append(f"message {push.msg_id} ({push.kind}) is in no ticket")
            continue
        if len(found) > 1:
            findings.duplicated_messages += len(found) - 1
            tickets = sorted(str(item["ticket_id"]) for item in found)
            findings.problems.append(f"message {push.msg_id} is stored {len(found)} times: {tickets}")
        if push.kind in served_digests:
            _check_media(found[0], push, served_digests[push.kind], snapshot, findings)


def _check_media(
    item: dict[str, Any], push: PlannedPush, served: str, snapshot: Snapshot, findings: Findings
) -> None:
    media = item.get("media") or {}
    key = media.get("s3_key")
    if media.get("status") != "stored" or not key or key not in snapshot.object_digests:
        findings.lost_media += 1
        findings.problems.append(
            f"media of message {push.msg_id} is not in S3 (status {media.get('status')})"
        )
        return
    findings.media_files += 1
    digest = snapshot.object_digests[key]
    if digest != media.get("sha256") or digest != served:
        findings.bad_checksums += 1
        findings.lost_media += 1
        findings.problems.append(f"media of message {push.msg_id} in S3 differs from the file WeChat served")


def _check_notices(snapshot: Snapshot, pushes: list[PlannedPush], findings: Findings) -> None:
    notices = snapshot.notices()
    findings.notices = len(notices)
    states = Counter(str(notice.get("state")) for notice in notices)
    findings.notices_by_state = dict(sorted(states.items()))
    findings.undeliverable = states.get("undeliverable", 0)
    expected = 0
    for notice in notices:
        expected += int(notice.get("next_part", 0))
        if notice.get("state") == "sent" and notice.get("channel") == "template":
            expected += 1
        if notice.get("state") == "sending":
            findings.lost_notices += 1
            findings.problems.append(f"notice {notice.get('notice_id')} is still sending")
    sends = [
        entry for entry in snapshot.sent if entry["api"] in ("message/custom/send", "message/template/send")
    ]
    findings.wechat_sends = len(sends)
    findings.resent_after_unknown = sum(
        1 for entry in snapshot.history() if (entry.get("detail") or {}).get("resent_after_unknown_result")
    )
    if len(sends) > expected:
        findings.duplicated_notices += len(sends) - expected
        findings.problems.append(
            f"the emulator delivered {len(sends)} messages, the ledger accounts for {expected}"
        )
    elif len(sends) < expected:
        findings.lost_notices += expected - len(sends)
        findings.problems.append(f"the ledger records {expected} sends, the emulator delivered {len(sends)}")
    welcomes = Counter(notice.get("notice_id") for notice in notices if notice.get("kind") == "welcome")
    followed = sum(1 for push in pushes if push.kind == "subscribe" and push.accepted)
    if len(welcomes) < followed:
        findings.lost_notices += followed - len(welcomes)
        findings.problems.append(f"{followed} citizens followed, {len(welcomes)} welcome notices exist")
