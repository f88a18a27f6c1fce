"""The whole pipeline on the local stack under a burst of text pushes, against moto's own floor.

`measure_pipeline(pushes, citizens)` starts `devstack.runner.LocalStack` on free ports (safe mode,
schedules off, so draft-submit never runs during the measurement) and sends `pushes` text messages
from `citizens` citizens: one thread per citizen posts that citizen's messages one after another,
each as soon as the webhook has responded to the previous one, the way WeChat delivers a citizen's
messages in order while different citizens arrive concurrently. The pushes are built and signed by
`devstack.wechat_push`.

Definitions (every timestamp is this machine's wall clock):

- push → message item: from just before the webhook POST to the first poll that finds the push's
  marker item `PUSH#{dedup_hash}`. ticket-write writes the marker and the message item in one
  DynamoDB transaction, so finding the marker means the message item is written. One poller asks
  for every outstanding marker with BatchGetItem in a loop, so a figure is late by up to one poll
  round; the median round is reported as the resolution.
- first push → acknowledgement: per citizen, from just before the citizen's first POST to the time
  the WeChat emulator accepted the customer-service message that acknowledges the new draft
  (`message/custom/send`; the emulator stamps it when it accepts the call). A citizen's later
  messages join the same draft and send no acknowledgement, so there is one per citizen.
- throughput: pushes divided by the time from the first POST to the last marker found.

The floor is what moto costs without any of our code: the same number of chains of SQS
SendMessage (FIFO, one group per citizen), ReceiveMessage, DeleteMessage and DynamoDB PutItem
against the same moto server, from the same number of threads. Its per-chain time and its
throughput bound what the pipeline, which makes several such calls per push, can reach here.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from devstack.runner import LocalStack, LocalStackConfig
from devstack.wechat_push import build_push, message_xml
from intake.messages import hashed_dedup_id

# The default burst: 500 pushes from 50 citizens. On a 2-core machine, where moto and every worker share
# the cores, the pipeline settles at about 2 pushes per second, so the burst takes about 4 minutes.
DEFAULT_PUSHES = 500
DEFAULT_CITIZENS = 50
# Seconds the pipeline may take per push, and at least MIN_SETTLE_SECONDS, before the run fails as too slow.
SETTLE_SECONDS_PER_PUSH = 1.5
MIN_SETTLE_SECONDS = 60.0
# Pause between poll rounds when a round found nothing new (keeps the poller from starving moto).
POLL_PAUSE_SECONDS = 0.02
BATCH_GET_LIMIT = 100
TEXT = "幸福路12号门口的路灯坏了三天，晚上很黑，请尽快修理"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineFigure:
    """Latencies in seconds and throughputs in pushes per second of one pipeline run and its floor."""

    pushes: int
    citizens: int
    webhook_median: float
    webhook_p95: float
    item_median: float
    item_p95: float
    ack_median: float
    ack_p95: float
    throughput: float
    poll_resolution: float
    floor_chain_median: float
    floor_chain_p95: float
    floor_throughput: float


@dataclass
class _Push:
    citizen: str
    msg_id: int
    dedup_hash: str
    posted_at: float = 0.0
    answered_at: float = 0.0
    written_at: float | None = None


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 2 else samples[0]


def _dedup_hash(open_id: str, msg_id: int) -> str:
    """Return the push's dedup hash: a text message's dedup id is `FromUserName:MsgId`."""
    return hashed_dedup_id(f"{open_id}:{msg_id}")


def _plan(pushes: int, citizens: int) -> dict[str, list[_Push]]:
    run = uuid.uuid4().hex[:8]
    open_ids = [f"oBench{run}{index:04d}" for index in range(citizens)]
    base = int(time.time() * 1000) * 1000
    plan: dict[str, list[_Push]] = {open_id: [] for open_id in open_ids}
    for index in range(pushes):
        open_id = open_ids[index % citizens]
        msg_id = base + index
        plan[open_id].append(_Push(open_id, msg_id, _dedup_hash(open_id, msg_id)))
    return plan


def _send_citizen(stack: LocalStack, pushes: list[_Push]) -> None:
    """Post one citizen's pushes in order, each after the webhook responded to the previous one."""
    config = stack.config
    with requests.Session() as http:
        for push in pushes:
            now = int(time.time())
            xml = message_xml("text", push.citizen, config.original_id, now, Content=TEXT, MsgId=push.msg_id)
            request = build_push(
                xml,
                mode=config.message_mode,
                token=config.wechat_token,
                encoding_aes_key=config.encoding_aes_key,
                app_id=config.app_id,
                timestamp=now,
            )
            push.posted_at = time.time()
            response = http.post(
                stack.webhook_url,
                params=request.query,
                data=request.body.encode("utf-8"),
                headers={"Content-Type": "text/xml"},
                timeout=10,
            )
            push.answered_at = time.time()
            if response.status_code != 200:
                raise RuntimeError(
                    f"webhook returned HTTP {response.status_code} for a benchmark push; see the stack's log"
                )


def _settle_seconds(pushes: int) -> float:
    return max(MIN_SETTLE_SECONDS, pushes * SETTLE_SECONDS_PER_PUSH)


def _poll_markers(stack: LocalStack, pushes: list[_Push], stop: threading.Event) -> list[float]:
    """Stamp each push with the time its marker item was first found; return each round's duration."""
    assert stack.stack is not None
    dynamodb = stack.stack.client("dynamodb")
    table = stack.stack.ref("TicketsTable")
    by_key = {f"PUSH#{push.dedup_hash}": push for push in pushes}
    rounds: list[float] = []
    deadline = time.monotonic() + _settle_seconds(len(pushes))
    while by_key and not stop.is_set() and time.monotonic() < deadline:
        started = time.time()
        outstanding = [key for key, push in by_key.items() if push.posted_at]
        found = 0
        for offset in range(0, len(outstanding), BATCH_GET_LIMIT):
            keys = [
                {"PK": {"S": key}, "SK": {"S": "PUSH"}}
                for key in outstanding[offset : offset + BATCH_GET_LIMIT]
            ]
            answer = dynamodb.batch_get_item(
                RequestItems={table: {"Keys": keys, "ProjectionExpression": "PK", "ConsistentRead": True}}
            )
            seen_at = time.time()
            for item in answer["Responses"].get(table, []):
                push = by_key.pop(item["PK"]["S"])
                push.written_at = seen_at
                found += 1
        if outstanding:
            rounds.append(time.time() - started)
        if not found:
            time.sleep(POLL_PAUSE_SECONDS)
    return rounds


def _acknowledged_at(stack: LocalStack, open_ids: set[str]) -> dict[str, float]:
    """Return, per citizen, when the emulator accepted the first customer-service message to them."""
    assert stack.emulator is not None
    first: dict[str, float] = {}
    for entry in stack.emulator.sent:
        if entry["api"] == "message/custom/send" and entry["touser"] in open_ids:
            first.setdefault(entry["touser"], float(entry["at"]))
    return first


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what} did not happen within {timeout:.0f} s; rerun with fewer pushes (--pipeline-pushes)"
            )
        time.sleep(0.1)


def _floor(stack: LocalStack, chains: int, threads: int) -> tuple[list[float], float]:
    """Run `chains` SendMessage, ReceiveMessage, DeleteMessage, PutItem chains on moto.

    Returns each chain's seconds and the seconds all of them took.
    """
    assert stack.stack is not None
    session = stack.stack.session
    sqs = session.client("sqs", endpoint_url=stack.moto_url)
    dynamodb = session.client("dynamodb", endpoint_url=stack.moto_url)
    name = f"bench-floor-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
        },
    )["QueueUrl"]
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    def chain(index: int) -> float:
        group = f"citizen-{index % threads:04d}"
        started = time.perf_counter()
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=TEXT,
            MessageGroupId=group,
            MessageDeduplicationId=f"{name}-{index}",
        )
        messages: list[dict[str, Any]] = []
        while not messages:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        dynamodb.put_item(
            TableName=name,
            Item={"PK": {"S": f"TICKET#{group}"}, "SK": {"S": f"MSG#{index:010d}"}, "content": {"S": TEXT}},
        )
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        times = list(pool.map(chain, range(chains)))
    wall = time.perf_counter() - started
    sqs.delete_queue(QueueUrl=queue_url)
    dynamodb.delete_table(TableName=name)
    return times, wall


def measure_pipeline(pushes: int = DEFAULT_PUSHES, citizens: int = DEFAULT_CITIZENS) -> PipelineFigure:
    """Run the pipeline burst and the moto floor on one local stack and return the figures."""
    if pushes < citizens or citizens < 1:
        raise ValueError(f"need at least one push per citizen, got {pushes} pushes for {citizens} citizens")
    config = LocalStackConfig(
        port=0, emulator_port=0, message_mode="safe", schedules=False, run_schedules_at_start=False
    )
    settle = _settle_seconds(pushes)
    plan = _plan(pushes, citizens)
    every_push = [push for citizen_pushes in plan.values() for push in citizen_pushes]
    with LocalStack(config) as stack:
        assert stack.emulator is not None
        for open_id in plan:
            # The citizen follows the account and has just written, as WeChat would know before the push.
            stack.emulator.state.set_user(open_id, subscribed=True)
            stack.emulator.state.record_interaction(open_id)

        stop = threading.Event()
        rounds: list[float] = []
        poller = threading.Thread(
            target=lambda: rounds.extend(_poll_markers(stack, every_push, stop)),
            name="bench-poller",
            daemon=True,
        )
        poller.start()
        with ThreadPoolExecutor(max_workers=citizens) as senders:
            list(senders.map(lambda citizen_pushes: _send_citizen(stack, citizen_pushes), plan.values()))
        poller.join(timeout=settle)
        stop.set()
        missing = [push for push in every_push if push.written_at is None]
        if missing:
            raise TimeoutError(
                f"{len(missing)} of {pushes} pushes had no message item after {settle:.0f} s; "
                "rerun with fewer pushes (--pipeline-pushes)"
            )
        open_ids = set(plan)
        _wait_for(
            lambda: len(_acknowledged_at(stack, open_ids)) == len(open_ids),
            settle,
            "an acknowledgement for every citizen",
        )
        acknowledged = _acknowledged_at(stack, open_ids)
        stack.wait_idle(timeout=settle)

        floor_times, floor_wall = _floor(stack, pushes, citizens)

    webhook = [push.answered_at - push.posted_at for push in every_push]
    items = [push.written_at - push.posted_at for push in every_push if push.written_at is not None]
    acks = [acknowledged[open_id] - citizen_pushes[0].posted_at for open_id, citizen_pushes in plan.items()]
    first_post = min(push.posted_at for push in every_push)
    last_item = max(push.written_at for push in every_push if push.written_at is not None)
    return PipelineFigure(
        pushes=pushes,
        citizens=citizens,
        webhook_median=statistics.median(webhook),
        webhook_p95=_p95(webhook),
        item_median=statistics.median(items),
        item_p95=_p95(items),
        ack_median=statistics.median(acks),
        ack_p95=_p95(acks),
        throughput=pushes / (last_item - first_post),
        poll_resolution=statistics.median(rounds) if rounds else 0.0,
        floor_chain_median=statistics.median(floor_times),
        floor_chain_p95=_p95(floor_times),
        floor_throughput=pushes / floor_wall,
    )


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.WARNING)
    count, people = (int(value) for value in (sys.argv[1:3] if len(sys.argv) > 2 else ("200", "50")))
    print(measure_pipeline(count, people))
