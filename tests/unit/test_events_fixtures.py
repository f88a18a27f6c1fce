"""The committed events/wechat/ files: identical to the generator's output, and accepted by the handlers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from devstack import make_events
from devstack.resources import Stack
from intake.records import InboundRecord
from tests.unit.webhook_support import drain, invoke, pin_clock, queued_messages, shared_stacks

PUSH_EVENTS = [(mode, kind) for mode in make_events.MODES for kind in make_events.PUSHES]


def test_committed_events_match_the_generator() -> None:
    generated = make_events.generate()
    committed = set(make_events.EVENTS_DIR.rglob("*.json"))
    assert committed == set(generated), "run python -m devstack.make_events"
    for path, content in generated.items():
        assert path.read_text(encoding="utf-8") == content, (
            f"{path} is stale: run python -m devstack.make_events"
        )
    assert make_events.main(["--check"]) == 0


def test_generation_is_reproducible() -> None:
    assert make_events.generate() == make_events.generate()


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, Stack]]:
    with shared_stacks(make_events.MODES) as created:
        yield created


@pytest.fixture
def stack(stacks: dict[str, Stack], mode: str) -> Stack:
    chosen = stacks[mode]
    drain(chosen)
    return chosen


@pytest.mark.parametrize(("mode", "kind"), PUSH_EVENTS, ids=[f"{m}/{k}" for m, k in PUSH_EVENTS])
def test_push_event_is_queued(
    mode: str,
    kind: str,
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = json.loads((make_events.EVENTS_DIR / mode / f"{kind}.json").read_text(encoding="utf-8"))
    pin_clock(monkeypatch, make_events.push_time(kind) + 2)
    ingest = load_function("MessageIngestFunction")

    response = invoke(ingest, event)

    assert (response["statusCode"], response["body"]) == (200, "success")
    messages = queued_messages(stack)
    assert len(messages) == 1
    record = InboundRecord.model_validate_json(messages[0]["Body"])
    msg_type, fields = make_events.PUSHES[kind]
    assert record.msg_type == msg_type
    assert record.event == fields.get("Event")
    assert record.open_id == make_events.OPEN_ID == messages[0]["Attributes"]["MessageGroupId"]
    message = record.message()
    assert type(message).__name__ != "UnknownMessage", "every committed event is a known type"
    for name, value in fields.items():
        if isinstance(value, float):
            assert float(record.fields[name]) == pytest.approx(value)
        else:
            assert str(record.fields[name]) == str(value)


@pytest.mark.parametrize("mode", ["safe"])
def test_url_check_event(
    mode: str, stack: Stack, load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    event = json.loads((make_events.EVENTS_DIR / "url_check.json").read_text(encoding="utf-8"))
    pin_clock(monkeypatch, int(make_events.URL_CHECK["timestamp"]))
    response = invoke(load_function("WebhookVerifyFunction"), event)
    assert (response["statusCode"], response["body"]) == (200, "4375120948345356249")
