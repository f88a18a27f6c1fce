"""The reliability harness's checks find lost and duplicated messages, media and notices."""

from __future__ import annotations

import hashlib
from typing import Any

from devstack.reliability.checks import Findings, Snapshot, check
from devstack.reliability.scenario import PlannedPush, build_scenario

IMAGE_DIGEST = hashlib.sha256(b"jpeg bytes").hexdigest()
SERVED = {"image": IMAGE_DIGEST, "voice": "0" * 64, "video": "1" * 64}


def _push(index: int, kind: str, accepted: bool = True) -> PlannedPush:
    push = PlannedPush(
        index=index,
        open_id="oCITIZEN-0001",
        kind=kind,
        create_time_offset=index,
        msg_id=None if kind == "subscribe" else 1000 + index,
        repeats=1,
        concurrent=False,
        mode="safe",
    )
    push.accepted = accepted
    return push


def _message(msg_id: int, ticket_id: str, media: dict[str, Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": f"TICKET#{ticket_id}",
        "SK": f"MSG#{msg_id}",
        "ticket_id": ticket_id,
        "msg_id": str(msg_id),
    }
    if media is not None:
        item["media"] = media
    return item


def _notice(
    notice_id: str, state: str = "sent", next_part: int = 1, kind: str = "acknowledgement"
) -> dict[str, Any]:
    return {"PK": f"NOTICE#{notice_id}", "SK": "STATE", "notice_id": notice_id, "state": state,
            "next_part": next_part, "kind": kind, "channel": "customer_service"}  # fmt: skip


def _sent(count: int) -> list[dict[str, Any]]:
    return [{"api": "message/custom/send", "touser": "oCITIZEN-0001", "payload": {}} for _ in range(count)]


def _clean() -> tuple[Snapshot, list[PlannedPush]]:
    pushes = [_push(0, "subscribe"), _push(1, "text"), _push(2, "image"), _push(3, "submit")]
    media = {"status": "stored", "s3_key": "media/a.jpg", "sha256": IMAGE_DIGEST}
    snapshot = Snapshot(
        items=[
            _message(1001, "T1"),
            _message(1002, "T1", media),
            _notice("welcome-1", kind="welcome"),
            _notice("ack-1"),
        ],
        object_digests={"media/a.jpg": IMAGE_DIGEST},
        sent=_sent(2),
    )
    return snapshot, pushes


def test_check_clean_run_reports_nothing() -> None:
    # GIVEN a snapshot where every message, file and notice is there once
    snapshot, pushes = _clean()

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN nothing is lost or duplicated
    assert (findings.lost, findings.duplicated) == (0, 0)
    assert findings.problems == []
    assert findings.media_files == 1


def test_check_missing_message_is_lost() -> None:
    # GIVEN the text message's item is gone
    snapshot, pushes = _clean()
    snapshot.items = [item for item in snapshot.items if item.get("msg_id") != "1001"]

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN one message is lost
    assert findings.lost_messages == 1
    assert findings.lost == 1


def test_check_message_in_two_tickets_is_duplicated() -> None:
    # GIVEN the text message is stored in a second ticket too
    snapshot, pushes = _clean()
    snapshot.items.append(_message(1001, "T2"))

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN one duplicate is reported, naming both tickets
    assert findings.duplicated_messages == 1
    assert "['T1', 'T2']" in findings.problems[0]


def test_check_unaccepted_push_is_not_expected() -> None:
    # GIVEN the webhook never accepted the text push and it was not stored
    snapshot, pushes = _clean()
    pushes[1].accepted = False
    snapshot.items = [item for item in snapshot.items if item.get("msg_id") != "1001"]

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN it does not count as lost
    assert findings.lost == 0


def test_check_media_with_other_bytes_is_lost() -> None:
    # GIVEN the object in S3 differs from the file the emulator served
    snapshot, pushes = _clean()
    snapshot.object_digests["media/a.jpg"] = "f" * 64

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN the media file counts as lost, with a bad checksum
    assert findings.bad_checksums == 1
    assert findings.lost_media == 1


def test_check_pending_media_is_lost() -> None:
    # GIVEN media-store never stored the image
    snapshot, pushes = _clean()
    snapshot.items[1]["media"] = {"status": "pending"}

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN the media file counts as lost
    assert findings.lost_media == 1


def test_check_notice_sent_twice_is_duplicated() -> None:
    # GIVEN the emulator delivered one message more than the ledger accounts for
    snapshot, pushes = _clean()
    snapshot.sent = _sent(3)

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN one notice is duplicated
    assert findings.duplicated_notices == 1
    assert findings.lost_notices == 0


def test_check_notice_still_sending_is_lost() -> None:
    # GIVEN a notice whose ledger never reached a final state
    snapshot, pushes = _clean()
    snapshot.items.append(_notice("ack-2", state="sending", next_part=0))

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN it counts as lost
    assert findings.lost_notices == 1


def test_check_template_fallback_counts_one_send() -> None:
    # GIVEN a notice sent by one template message after the window closed
    snapshot, pushes = _clean()
    snapshot.items.append({**_notice("ack-2", next_part=0), "channel": "template"})
    snapshot.sent = [*_sent(2), {"api": "message/template/send", "touser": "oCITIZEN-0001", "payload": {}}]

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN the ledger and the sent log agree
    assert (findings.lost, findings.duplicated) == (0, 0)


def test_check_missing_welcome_is_lost() -> None:
    # GIVEN the citizen followed but no welcome notice exists
    snapshot, pushes = _clean()
    snapshot.items = [item for item in snapshot.items if item.get("kind") != "welcome"]
    snapshot.sent = _sent(1)

    # WHEN it is checked
    findings = check(snapshot, pushes, SERVED)

    # THEN one notice is lost
    assert findings.lost_notices == 1


def test_findings_totals_add_up() -> None:
    # GIVEN findings with one of each problem
    findings = Findings(
        lost_messages=1, lost_media=1, lost_notices=1, duplicated_messages=1, duplicated_notices=1
    )

    # WHEN the totals are read
    totals = (findings.lost, findings.duplicated)

    # THEN they add the parts
    assert totals == (3, 2)


def test_build_scenario_is_the_same_for_the_same_seed() -> None:
    # GIVEN two scenarios from one seed
    first = build_scenario(40, 8, seed=5)
    second = build_scenario(40, 8, seed=5)

    # WHEN their pushes are compared
    same = [(p.kind, p.msg_id, p.repeats, p.concurrent, p.mode) for p in first.pushes] == [
        (p.kind, p.msg_id, p.repeats, p.concurrent, p.mode) for p in second.pushes
    ]

    # THEN they are identical, each citizen starts with a follow, and both modes are used
    assert same
    assert all(pushes[0].kind == "subscribe" for pushes in first.pushes_by_citizen.values())
    assert len(first.pushes) == 40
    assert {push.mode for push in first.pushes} == {"plain", "safe"}
