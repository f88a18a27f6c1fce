"""The whole pipeline over HTTP in every message mode: push → ticket → media in S3 → reply to the citizen."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.api_gateway import SigV4RequestAuth
from devstack.runner import LocalStack
from devstack.simulator import Credentials, Simulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["plain", "compatible", "safe"])
def mode_simulator(request: pytest.FixtureRequest, local_stack: LocalStack) -> Iterator[Simulator]:
    mode = request.param
    local_stack.update_parameters(MessageMode=mode)
    # A 15 s answer limit instead of WeChat's 5 s keeps a busy test machine from causing retries.
    yield Simulator(local_stack.webhook_url, Credentials.from_environ({}), mode=mode, timeout=15)
    local_stack.update_parameters(MessageMode="safe")


def _tickets(local_stack: LocalStack, open_id: str) -> list[dict[str, Any]]:
    signed = SigV4RequestAuth()
    listing = requests.get(
        f"{local_stack.url}/api/tickets", params={"citizen": open_id}, timeout=15, auth=signed
    )
    listing.raise_for_status()
    return [
        requests.get(f"{local_stack.url}/api/tickets/{item['ticket_id']}", timeout=15, auth=signed).json()
        for item in listing.json()["items"]
    ]


def _sent_to(local_stack: LocalStack, open_id: str) -> list[dict[str, Any]]:
    sent = requests.get(f"{local_stack.url}/_local/wechat/sent", timeout=5).json()
    return [entry for entry in sent if entry["touser"] == open_id]


def test_pipeline_text_and_photo_become_ticket(mode_simulator: Simulator, local_stack: LocalStack) -> None:
    # GIVEN a citizen who follows the account, in this message mode
    open_id = f"oPIPELINE-{mode_simulator.mode}-00000000001"
    mode_simulator.push("event", open_id, Event="subscribe")

    # WHEN they report a problem with a sentence and a photo, then submit it
    text_attempts = mode_simulator.push("text", open_id, Content="莞城街道西正路井盖缺失，很危险")
    photo_attempts = mode_simulator.push("image", open_id, **mode_simulator.media_fields("image", None))
    submit_attempts = mode_simulator.push("text", open_id, Content="提交")
    local_stack.wait_idle(90)

    # THEN WeChat got `success` at once for every push
    assert [len(attempts) for attempts in (text_attempts, photo_attempts, submit_attempts)] == [1, 1, 1]
    assert all(attempts[-1].accepted for attempts in (text_attempts, photo_attempts, submit_attempts))

    # AND one submitted ticket contains the text and the stored photo
    tickets = _tickets(local_stack, open_id)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket["status"] == "submitted"
    by_type = {message["msg_type"]: message for message in ticket["messages"]}
    assert sorted(by_type) == ["image", "text"]
    assert by_type["text"]["content"] == "莞城街道西正路井盖缺失，很危险"
    assert by_type["image"]["media"]["content_type"] == "image/jpeg"
    assert by_type["image"]["media"]["size"] > 0

    # AND the citizen received the ticket number
    texts = [entry["payload"].get("text", {}).get("content", "") for entry in _sent_to(local_stack, open_id)]
    assert any(ticket["ticket_id"] in text for text in texts)
