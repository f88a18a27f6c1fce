"""ticket-write end to end on the emulated stack: exactly-once under redelivery, crashes and poison records.

`TicketWriteDriver` (also used by the other ticket-write test modules) builds SQS FIFO events in the
shape Lambda delivers them and reads back what the function stored.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from boto3.dynamodb.conditions import Key

from devstack.resources import Stack
from intake import clock
from intake.messages import hashed_dedup_id, parse_fields
from intake.records import InboundRecord

ACCOUNT_OPEN_ID = "gh_97417a04a28d"
# A fixed moment: 2026-12-04 10:00:00 China Standard Time.
BASE_TIME = 1_796_349_600


def open_id_of(index: int) -> str:
    """Return a 28-character OpenID like WeChat's (prefix o, then base64-ish characters)."""
    return "o" + hashlib.sha256(f"citizen-{index}".encode()).hexdigest()[:27]


class TicketWriteDriver:
    """Sends pushes through ticket-write the way Lambda's SQS event source does and inspects the table."""

    def __init__(self, stack: Stack, module: ModuleType, context: Any) -> None:
        self.stack = stack
        self.module = module
        self.context = context
        self.table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
        self.queue_arn = stack.attribute("InboundQueue", "Arn")
        self.sequence = 0
        self.msg_ids = 0

    # -- building pushes ----------------------------------------------------------------------------

    def next_msg_id(self) -> str:
        self.msg_ids += 1
        return str(24_000_000_000_000_000 + self.msg_ids)

    def text(self, open_id: str, content: str, at: int) -> InboundRecord:
        return self.push(open_id, {"MsgType": "text", "Content": content, "MsgId": self.next_msg_id()}, at)

    def image(self, open_id: str, at: int) -> InboundRecord:
        fields = {
            "MsgType": "image",
            "PicUrl": "http://127.0.0.1/pic.jpg",
            "MediaId": f"media-{self.msg_ids}",
            "MsgId": self.next_msg_id(),
        }
        return self.push(open_id, fields, at)

    def location(
        self, open_id: str, at: int, latitude: float = 23.02, longitude: float = 113.75
    ) -> InboundRecord:
        fields = {
            "MsgType": "location",
            "Location_X": latitude,
            "Location_Y": longitude,
            "Scale": 15,
            "Label": "东莞市南城街道",
            "MsgId": self.next_msg_id(),
        }
        return self.push(open_id, fields, at)

    def event(self, open_id: str, event: str, at: int, **extra: Any) -> InboundRecord:
        return self.push(open_id, {"MsgType": "event", "Event": event, **extra}, at)

    def push(self, open_id: str, fields: dict[str, Any], at: int) -> InboundRecord:
        all_fields = {"ToUserName": ACCOUNT_OPEN_ID, "FromUserName": open_id, "CreateTime": at, **fields}
        message = parse_fields(all_fields)
        return InboundRecord.from_message(message, received_at=float(at))

    # -- SQS events ---------------------------------------------------------------------------------

    def sqs_record(
        self, record: InboundRecord | str, group_id: str | None = None, receive_count: int = 1
    ) -> dict:
        self.sequence += 1
        if isinstance(record, InboundRecord):
            body = record.model_dump_json()
            group = group_id or record.open_id
            dedup = hashed_dedup_id(record.dedup_id)
        else:
            body = record
            group = group_id or "poison-group"
            dedup = hashlib.sha256(body.encode()).hexdigest()
        return {
            "messageId": f"00000000-0000-4000-8000-{self.sequence:012d}",
            "receiptHandle": f"receipt-{self.sequence}",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": str(receive_count),
                "SentTimestamp": "1796349600000",
                "SequenceNumber": f"{18_800_000_000_000_000_000 + self.sequence}",
                "MessageGroupId": group,
                "SenderId": "AIDAEXAMPLE",
                "MessageDeduplicationId": dedup,
                "ApproximateFirstReceiveTimestamp": "1796349600000",
            },
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }

    def invoke(self, records: list[dict]) -> list[str]:
        """Invoke the handler with one batch; return the messageIds reported as failed.

        When every record fails, Powertools raises instead of answering and Lambda retries the whole
        batch, so all messageIds count as failed.
        """
        try:
            response = self.module.lambda_handler({"Records": records}, self.context)
        except BatchProcessingError:
            return [record["messageId"] for record in records]
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def send(self, *records: InboundRecord) -> list[str]:
        return self.invoke([self.sqs_record(record) for record in records])

    # -- reading back -------------------------------------------------------------------------------

    def scan(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {}
        while True:
            response = self.table.scan(**arguments)
            items += response["Items"]
            if "LastEvaluatedKey" not in response:
                return items
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def items_of_type(self, item_type: str) -> list[dict[str, Any]]:
        return [item for item in self.scan() if item.get("item_type") == item_type]

    def tickets(self) -> list[dict[str, Any]]:
        return sorted(self.items_of_type("ticket"), key=lambda item: item["ticket_id"])

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        return self.table.get_item(Key={"PK": f"TICKET#{ticket_id}", "SK": "TICKET"})["Item"]

    def messages(self, ticket_id: str) -> list[dict[str, Any]]:
        response = self.table.query(
            KeyConditionExpression=Key("PK").eq(f"TICKET#{ticket_id}") & Key("SK").begins_with("MSG#")
        )
        return response["Items"]

    def profile(self, open_id: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE"}).get("Item")

    def put_ticket_status(self, ticket_id: str, status: str) -> None:
        """Change a ticket's status the way the workflow would (it is not under test here)."""
        self.table.update_item(
            Key={"PK": f"TICKET#{ticket_id}", "SK": "TICKET"},
            UpdateExpression="SET #status = :status, GSI1PK = :gsi",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":status": status, ":gsi": f"STATUS#{status}"},
        )

    def published(self) -> list[dict[str, Any]]:
        """Return the notices that reached the outbound queue through the bus rule (SQS body = envelope)."""
        sqs = self.stack.client("sqs")
        url = self.stack.ref("OutboundQueue")
        envelopes = []
        while True:
            response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            messages = response.get("Messages", [])
            if not messages:
                return envelopes
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def notices(self) -> list[dict[str, Any]]:
        return [envelope["detail"] for envelope in self.published()]

    def media_jobs(self) -> list[dict[str, Any]]:
        sqs = self.stack.client("sqs")
        url = self.stack.ref("MediaQueue")
        jobs = []
        while True:
            response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return jobs
            for message in messages:
                jobs.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


class RecordingEventsClient:
    """Wraps the real EventBridge client: records every PutEvents call and can fail chosen calls."""

    def __init__(self, real: Any, fail_calls: set[int] | None = None) -> None:
        self.real = real
        self.fail_calls = fail_calls or set()
        self.calls = 0
        self.entries: list[dict[str, Any]] = []

    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls in self.fail_calls:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "InternalException", "Message": "injected failure"}}, "PutEvents"
            )
        self.entries += kwargs["Entries"]
        return self.real.put_events(**kwargs)

    def details(self, detail_type: str) -> list[dict[str, Any]]:
        return [json.loads(entry["Detail"]) for entry in self.entries if entry["DetailType"] == detail_type]


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Pin intake.clock.now; returns a setter for the pinned time."""
    current = {"now": float(BASE_TIME)}
    monkeypatch.setattr(clock, "now", lambda: current["now"])

    def set_now(at: float) -> None:
        current["now"] = at

    return set_now


@pytest.fixture
def driver(
    stack: Stack, load_function: Callable[..., ModuleType], lambda_context: Any, pinned_clock: Any
) -> TicketWriteDriver:
    module = load_function("TicketWriteFunction")
    return TicketWriteDriver(stack, module, lambda_context)


@pytest.fixture
def events(driver: TicketWriteDriver, monkeypatch: pytest.MonkeyPatch) -> RecordingEventsClient:
    recorder = RecordingEventsClient(driver.module.events_client)
    monkeypatch.setattr(driver.module, "events_client", recorder)
    return recorder


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Return every captured log record with all its extra keys, as the JSON formatter would print them."""
    return "\n".join(json.dumps(vars(record), default=str, ensure_ascii=False) for record in caplog.records)


def message_counts_by_dedup(driver: TicketWriteDriver) -> Counter[str]:
    return Counter(item["dedup_hash"] for item in driver.items_of_type("message"))


# -- tests ------------------------------------------------------------------------------------------


def test_ticket_write_first_text_opens_draft(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a citizen's first message
    open_id = open_id_of(1)
    record = driver.text(open_id, "路灯坏了", BASE_TIME)

    # WHEN ticket-write processes it
    failures = driver.send(record)

    # THEN one draft ticket with one message exists and the acknowledgement names its number
    assert failures == []
    tickets = driver.tickets()
    assert [ticket["ticket_id"] for ticket in tickets] == ["DG20261204-0001"]
    assert tickets[0]["status"] == "collecting"
    assert tickets[0]["message_count"] == 1
    assert len(driver.messages("DG20261204-0001")) == 1
    notices = events.details("CitizenNoticeRequested")
    assert [notice["notice_id"] for notice in notices] == ["DG20261204-0001:ack"]
    assert "DG20261204-0001" in notices[0]["text"]


class FifoQueueSimulation:
    """Delivers records the way an SQS FIFO queue with a redrive policy does, batch after batch.

    Records of one group are delivered in order; a failed record stays at its group's head and comes
    back in a later batch; after `max_receive_count` receives a record moves to the dead-letter list.
    """

    def __init__(self, driver: TicketWriteDriver, max_receive_count: int = 5, batch_size: int = 10) -> None:
        self.driver = driver
        self.max_receive_count = max_receive_count
        self.batch_size = batch_size
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.receives: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.dead_letters: list[dict[str, Any]] = []
        self.batches = 0

    def enqueue(self, record: InboundRecord | str, group_id: str | None = None) -> dict[str, Any]:
        sqs_record = self.driver.sqs_record(record, group_id=group_id)
        self.groups.setdefault(sqs_record["attributes"]["MessageGroupId"], []).append(sqs_record)
        return sqs_record

    def _next_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        depth = 0
        while len(batch) < self.batch_size:
            added = False
            for records in self.groups.values():
                if depth < len(records) and len(batch) < self.batch_size:
                    batch.append(records[depth])
                    added = True
            if not added:
                break
            depth += 1
        # Lambda receives a group's records in order; interleaving groups keeps other groups moving.
        return batch

    def run(self, max_batches: int = 100) -> None:
        while any(self.groups.values()) and self.batches < max_batches:
            batch = self._next_batch()
            self.batches += 1
            for record in batch:
                self.receives[record["messageId"]] += 1
                record["attributes"]["ApproximateReceiveCount"] = str(self.receives[record["messageId"]])
            failed = set(self.driver.invoke(batch))
            for record in batch:
                group = self.groups[record["attributes"]["MessageGroupId"]]
                if record["messageId"] not in failed:
                    group.remove(record)
                    continue
                self.failures[record["messageId"]] += 1
                if self.receives[record["messageId"]] >= self.max_receive_count:
                    group.remove(record)
                    self.dead_letters.append(record)


def test_ticket_write_exactly_once_under_redelivery(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN 36 messages from 6 citizens, each citizen's within one collecting window
    citizens = [open_id_of(index) for index in range(6)]
    queue = FifoQueueSimulation(driver)
    records = [
        driver.text(citizens[index % 6], f"第{index}条：小区门口的垃圾没人清理", BASE_TIME + index * 5)
        for index in range(36)
    ]
    # AND duplicate deliveries (the same push queued two or three times, adjacent and far apart)
    poison_group = citizens[3]
    poison = None
    for index, record in enumerate(records):
        queue.enqueue(record)
        if index in {4, 17, 33}:
            queue.enqueue(record)
        if index == 21:
            queue.enqueue(record)
            queue.enqueue(record)
        if index == 27:
            # AND a poison record in the middle of citizen 3's messages
            poison = queue.enqueue('{"schema_version": 1, "dedup_id": "x"', group_id=poison_group)
    for index in (2, 30):
        queue.enqueue(records[index])
    # AND EventBridge failing once in the middle of the first batch (after the writes succeeded)
    events.fail_calls = {3}

    # WHEN the queue delivers everything, with redelivery and the redrive policy
    queue.run()

    # THEN every message is stored exactly once
    counts = message_counts_by_dedup(driver)
    assert len(counts) == 36
    assert set(counts.values()) == {1}
    # AND each citizen has exactly one ticket holding its 6 messages
    tickets = driver.tickets()
    assert sorted(ticket["open_id"] for ticket in tickets) == sorted(citizens)
    assert {ticket["message_count"] for ticket in tickets} == {6}
    # AND each ticket was acknowledged exactly once
    acknowledgements = Counter(notice["notice_id"] for notice in events.details("CitizenNoticeRequested"))
    assert sorted(acknowledgements) == sorted(f"{ticket['ticket_id']}:ack" for ticket in tickets)
    assert set(acknowledgements.values()) == {1}
    # AND the failed publish was retried and reached the bus
    assert events.calls > 3
    # AND the poison record failed on every receive and went to the dead-letter queue
    assert poison is not None
    assert queue.failures[poison["messageId"]] == 5
    assert [record["messageId"] for record in queue.dead_letters] == [poison["messageId"]]


def test_ticket_write_poison_skips_rest_of_group(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN one batch: citizen A's poison record, then A's valid message, then citizen B's message
    citizen_a, citizen_b = open_id_of(10), open_id_of(11)
    poison = driver.sqs_record("not json at all", group_id=citizen_a)
    after_poison = driver.sqs_record(driver.text(citizen_a, "后面的消息", BASE_TIME))
    other = driver.sqs_record(driver.text(citizen_b, "另一位市民", BASE_TIME))

    # WHEN ticket-write processes the batch
    failed = driver.invoke([poison, after_poison, other])

    # THEN the poison record and the rest of its group are reported failed, in order
    assert failed == [poison["messageId"], after_poison["messageId"]]
    # AND the other citizen's message became a ticket
    assert [ticket["open_id"] for ticket in driver.tickets()] == [citizen_b]


def test_ticket_write_publish_failure_retried_without_duplicates(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN EventBridge fails the first PutEvents call
    events.fail_calls = {1}
    record = driver.sqs_record(driver.text(open_id_of(12), "井盖丢了", BASE_TIME))

    # WHEN the first delivery fails after writing and the redelivery succeeds
    first = driver.invoke([record])
    second = driver.invoke([record])

    # THEN the first delivery reported the record as failed and the second did not
    assert first == [record["messageId"]]
    assert second == []
    # AND there is one ticket with one message
    assert len(driver.tickets()) == 1
    assert sum(message_counts_by_dedup(driver).values()) == 1
    # AND the acknowledgement was published once, by the redelivery
    assert [n["notice_id"] for n in events.details("CitizenNoticeRequested")] == ["DG20261204-0001:ack"]


def clear_idempotency_table(stack: Stack) -> None:
    table = stack.session.resource("dynamodb").Table(stack.ref("IdempotencyTable"))
    for item in table.scan()["Items"]:
        table.delete_item(Key={"id": item["id"]})


def test_ticket_write_redelivery_after_idempotency_expired(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a photo that was processed, its media stored, and its idempotency record expired
    record = driver.image(open_id_of(13), BASE_TIME)
    driver.send(record)
    assert len(driver.media_jobs()) == 1
    message = driver.items_of_type("message")[0]
    driver.table.update_item(
        Key={"PK": message["PK"], "SK": message["SK"]},
        UpdateExpression="SET media.#status = :stored",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":stored": "stored"},
    )
    clear_idempotency_table(driver.stack)
    published_before = len(events.entries)

    # WHEN the same push is delivered again
    failures = driver.send(record)

    # THEN nothing is written, queued or published again
    assert failures == []
    assert len(driver.tickets()) == 1
    assert sum(message_counts_by_dedup(driver).values()) == 1
    assert driver.media_jobs() == []
    assert len(events.entries) == published_before


def test_ticket_write_redelivery_resends_pending_media(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a photo whose media job was sent but media-store has not stored the file yet
    record = driver.image(open_id_of(14), BASE_TIME)
    driver.send(record)
    first_jobs = driver.media_jobs()
    clear_idempotency_table(driver.stack)

    # WHEN the same push is delivered again
    driver.send(record)

    # THEN the same media job is sent again, and no second message exists
    assert driver.media_jobs() == first_jobs
    assert sum(message_counts_by_dedup(driver).values()) == 1


def valid_record_json(driver: TicketWriteDriver, open_id: str) -> dict[str, Any]:
    return json.loads(driver.text(open_id, "正常的消息", BASE_TIME).model_dump_json())


def _malformed_bodies(driver: TicketWriteDriver, open_id: str) -> dict[str, str]:
    valid = valid_record_json(driver, open_id)
    wrong_version = {**valid, "schema_version": 2}
    missing = {key: value for key, value in valid.items() if key != "dedup_id"}
    bad_fields = {**valid, "fields": {**valid["fields"], "CreateTime": "yesterday"}}
    mismatch = {**valid, "dedup_id": f"{open_id}:999"}
    return {
        "not_json": "<xml>not json</xml>",
        "wrong_schema_version": json.dumps(wrong_version),
        "missing_field": json.dumps(missing),
        "invalid_push_fields": json.dumps(bad_fields),
        "record_fields_mismatch": json.dumps(mismatch),
    }


@pytest.mark.parametrize(
    "case",
    ["not_json", "wrong_schema_version", "missing_field", "invalid_push_fields", "record_fields_mismatch"],
)
def test_ticket_write_malformed_record_rejected(
    driver: TicketWriteDriver, events: RecordingEventsClient, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    # GIVEN a stored ticket and a malformed record in a batch with a valid record of another citizen
    open_id = open_id_of(15)
    driver.send(driver.text(open_id_of(16), "已有工单", BASE_TIME))
    stored_before = driver.scan()
    caplog.clear()
    bad = driver.sqs_record(_malformed_bodies(driver, open_id)[case], group_id=open_id)
    good = driver.sqs_record(driver.text(open_id_of(17), "另一位市民", BASE_TIME))

    # WHEN ticket-write processes the batch
    failed = driver.invoke([bad, good])

    # THEN only the malformed record is reported failed
    assert failed == [bad["messageId"]]
    # AND the rejection is logged without the OpenID
    output = logged(caplog)
    assert "inbound record rejected" in output
    assert open_id not in output
    # AND nothing stored before was changed or lost
    stored_after = {(item["PK"], item["SK"]): item for item in driver.scan()}
    for item in stored_before:
        if item["PK"].startswith("COUNTER#"):
            continue  # the valid record in the batch took the next ticket number
        assert stored_after[(item["PK"], item["SK"])] == item
    # AND the malformed record's citizen got nothing
    assert driver.profile(open_id) is None


def test_ticket_write_unknown_msg_type_skipped(
    driver: TicketWriteDriver, events: RecordingEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a push of a type this backend does not handle (WeChat adds types without notice)
    open_id = open_id_of(18)
    record = driver.push(open_id, {"MsgType": "miniprogrampage", "MsgId": driver.next_msg_id()}, BASE_TIME)
    caplog.clear()

    # WHEN ticket-write processes it
    failures = driver.send(record)

    # THEN it is acknowledged, so it neither blocks the citizen's later messages nor reaches the DLQ
    assert failures == []
    # AND it is logged without the OpenID and nothing is stored
    output = logged(caplog)
    assert "unsupported push skipped" in output
    assert open_id not in output
    assert driver.scan() == []
