"""Warm message-ingest time per push, plain and safe mode, against the floor of its own crypto and parsing.

The handler runs as Lambda calls it (an API Gateway event through `lambda_handler`), with the secret
read once from moto and then cached, and the SQS call answered by botocore's Stubber so that no
emulator time is measured. The floor is the work no implementation can skip: the signature checks,
the AES decryption (safe mode) and the XML parsing into the message model, with the same libraries.
A second reference adds what any implementation that queues through boto3 pays on top: one stubbed
SendMessage through a client configured as the handler's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
from botocore.stub import Stubber
from moto import mock_aws

from devstack.resources import create_stack
from devstack.template import function_specs
from devstack.wechat_push import api_gateway_event, build_push, message_xml

CREDENTIALS = {
    "token": "AAAAA",
    "app_id": "wx134c8103faa5a59e",
    "app_secret": "bench-app-secret",
    "encoding_aes_key": "A" * 43,
    "original_id": "gh_97417a04a28d",
}
WARM_UP_PUSHES = 50
# About the size of the InboundRecord JSON that message-ingest queues for one text push.
SQS_BODY_BYTES = 700
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass(frozen=True)
class WarmFigure:
    """Per-push seconds of the handler and of the floor in one message mode."""

    mode: str
    handler_median: float
    handler_p95: float
    floor_median: float
    sqs_call_median: float

    @property
    def floor_with_sqs_call(self) -> float:
        return self.floor_median + self.sqs_call_median


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _events(mode: str, count: int) -> list[dict[str, Any]]:
    now = int(time.time())
    events = []
    for index in range(count):
        xml = message_xml(
            "text",
            f"o-bench-citizen-{index % 50:02d}",
            CREDENTIALS["original_id"],
            now,
            Content="幸福路12号门口的路灯坏了三天，晚上很黑",
            MsgId=str(24614523000000000 + index),
        )
        push = build_push(
            xml,
            mode=mode,
            token=CREDENTIALS["token"],
            encoding_aes_key=CREDENTIALS["encoding_aes_key"],
            app_id=CREDENTIALS["app_id"],
            timestamp=now,
        )
        events.append(api_gateway_event("POST", "/wechat", push.query, push.body))
    return events


def _load_handler(code_file: str) -> ModuleType:
    """Import the handler module as a cold start does: per-process caches start empty."""
    from aws_lambda_powertools.utilities.parameters.base import clear_caches

    from intake.settings import get_settings

    clear_caches()
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location("bench_message_ingest", code_file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_message_ingest"] = module
    spec.loader.exec_module(module)
    return module


def _floor_seconds(events: list[dict[str, Any]], mode: str) -> list[float]:
    from intake.crypto import MessageCrypto
    from intake.messages import parse_fields
    from intake.push_xml import parse_push_xml
    from intake.signature import check_msg_signature, check_signature

    crypto = MessageCrypto(CREDENTIALS["encoding_aes_key"], CREDENTIALS["app_id"])
    token = CREDENTIALS["token"]
    samples = []
    for event in events:
        query = event["queryStringParameters"]
        start = time.perf_counter()
        check_signature(token, query["timestamp"], query["nonce"], query["signature"])
        fields = parse_push_xml(event["body"])
        if mode == "safe":
            check_msg_signature(
                token, query["timestamp"], query["nonce"], fields["Encrypt"], query["msg_signature"]
            )
            fields = parse_push_xml(crypto.decrypt(fields["Encrypt"]))
        parse_fields(fields)
        samples.append(time.perf_counter() - start)
    return samples


def _sqs_call_seconds(count: int) -> list[float]:
    """Time one stubbed SendMessage with a client configured as the handler's, the body a record's size."""
    client = boto3.client("sqs")
    body = json.dumps({"record": "x" * SQS_BODY_BYTES})
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-inbound.fifo"
    samples = []
    with Stubber(client) as stubber:
        for index in range(count):
            stubber.add_response(
                "send_message", {"MessageId": f"bench-{index}", "MD5OfMessageBody": "0" * 32}
            )
            start = time.perf_counter()
            client.send_message(
                QueueUrl=queue_url,
                MessageBody=body,
                MessageGroupId="o-bench",
                MessageDeduplicationId="0" * 64,
            )
            samples.append(time.perf_counter() - start)
    return samples


def _handler_seconds(events: list[dict[str, Any]], mode: str, sink: Any) -> list[float]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        stack = create_stack(
            session,
            parameter_overrides={"MessageMode": mode},
            secret_values={"WeChatSecret": json.dumps(CREDENTIALS)},
        )
        spec = next(
            s
            for s in function_specs(stack.template, stack.resolver)
            if s.logical_id == "MessageIngestFunction"
        )
        with _environment(spec.environment):
            # Powertools binds its log handler to sys.stdout at import, so its output goes to the sink.
            with contextlib.redirect_stdout(sink):
                module = _load_handler(str(spec.code_uri / "app.py"))
            stubber = Stubber(module.sqs)
            for index in range(len(events)):
                stubber.add_response(
                    "send_message", {"MessageId": f"bench-{index}", "MD5OfMessageBody": "0" * 32}
                )
            samples = []
            with stubber, contextlib.redirect_stdout(sink):
                context = _Context()
                for event in events:
                    start = time.perf_counter()
                    response = module.lambda_handler(event, context)
                    samples.append(time.perf_counter() - start)
                    if response["statusCode"] != 200:
                        raise RuntimeError(f"{mode} push answered {response['statusCode']}, expected 200")
    return samples


class _Context:
    function_name = "bench-message-ingest"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-message-ingest"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/bench-message-ingest"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 4000


def measure_warm_webhook(pushes: int) -> list[WarmFigure]:
    figures = []
    # One sink for the whole run: each import binds Powertools' log handler to the current stdout, and
    # a handler left pointing at a closed file would spend the measured time printing logging errors.
    with _environment(FAKE_AWS), open(os.devnull, "w", encoding="utf-8") as sink:
        figures += [_measure_mode(mode, pushes, sink) for mode in ("plain", "safe")]
    return figures


def _measure_mode(mode: str, pushes: int, sink: Any) -> WarmFigure:
    events = _events(mode, pushes + WARM_UP_PUSHES)
    handler = _handler_seconds(events, mode, sink)[WARM_UP_PUSHES:]
    floor = _floor_seconds(events, mode)[WARM_UP_PUSHES:]
    sqs_call = _sqs_call_seconds(len(events))[WARM_UP_PUSHES:]
    return WarmFigure(
        mode=mode,
        handler_median=statistics.median(handler),
        handler_p95=_p95(handler),
        floor_median=statistics.median(floor),
        sqs_call_median=statistics.median(sqs_call),
    )
