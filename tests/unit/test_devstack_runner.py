"""The function runner: worker environment and context, cold and warm starts, timeouts, import errors, concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devstack.runner import LocalStack, LocalStackConfig

TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "devstack" / "template.yaml"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    config = LocalStackConfig(template_path=TEMPLATE, port=0, schedules=False)
    with LocalStack(config) as stack:
        yield stack


def _echo(local_stack: LocalStack, path: str = "/api/hello/world") -> dict:
    response = requests.get(f"{local_stack.url}{path}", timeout=10)
    assert response.status_code == 200
    return json.loads(response.text)


def test_worker_gets_local_stack_environment(local_stack: LocalStack) -> None:
    document = _echo(local_stack)

    assert document["greeting"] == "hello"
    assert document["local_stack"] == "1"
    assert document["endpoint"] == local_stack.moto_url
    assert document["wechat_api_base"] == local_stack.emulator_url


def test_context_honours_template_timeout_and_memory(local_stack: LocalStack) -> None:
    document = _echo(local_stack)

    assert 4000 < document["remaining_ms"] <= 5000
    assert document["memory_limit_in_mb"] == 256
    assert document["function_name"] == "wechat-intake-local-EchoFunction"
    assert document["request_id"]


def test_warm_worker_keeps_module_state(local_stack: LocalStack) -> None:
    first = _echo(local_stack)

    second = _echo(local_stack)

    if second["pid"] == first["pid"]:
        assert second["invocations"] == first["invocations"] + 1
    warm = [record for record in local_stack.invocations("EchoFunction") if not record.cold_start]
    assert warm


def test_api_function_runs_concurrent_requests_in_separate_workers(local_stack: LocalStack) -> None:
    with ThreadPoolExecutor(max_workers=4) as executor:
        documents = list(executor.map(lambda _: _echo(local_stack), range(8)))

    assert len({document["pid"] for document in documents}) >= 2
    assert len({document["pid"] for document in documents}) <= 4


def test_timeout_kills_worker_and_reports_error(local_stack: LocalStack) -> None:
    timed_out = local_stack.invoke("SlowFunction", {"sleep": 3})

    quick = local_stack.invoke("SlowFunction", {"sleep": 0})

    assert timed_out.ok is False
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "1.00 seconds" in timed_out.error_message
    assert quick.ok is True
    assert quick.cold_start is True


def test_import_error_is_reported_per_invocation(local_stack: LocalStack) -> None:
    invocation = local_stack.invoke("BrokenFunction", {})

    assert invocation.ok is False
    assert invocation.error_type.startswith("Runtime.ImportModuleError")
    assert "module_that_does_not_exist" in invocation.error_message


def test_missing_function_code_is_reported(local_stack: LocalStack) -> None:
    invocation = local_stack.invoke("MissingFunction", {})

    assert invocation.ok is False
    assert "does not exist" in invocation.error_message
    assert local_stack.pools["MissingFunction"].present is False


def test_unknown_function_name_raises(local_stack: LocalStack) -> None:
    with pytest.raises(KeyError, match="EchoFunction"):
        local_stack.invoke("NoSuchFunction", {})


def test_update_parameters_cold_starts_with_new_environment(local_stack: LocalStack) -> None:
    local_stack.update_parameters(Greeting="nihao")

    document = _echo(local_stack)
    local_stack.update_parameters(Greeting="hello")

    assert document["greeting"] == "nihao"


def test_local_info_names_emulator(local_stack: LocalStack) -> None:
    info = requests.get(f"{local_stack.url}/_local/info", timeout=5).json()

    assert info["emulator_url"] == local_stack.emulator_url
    assert info["webhook_url"] == f"{local_stack.url}/api/wechat"


def test_local_wechat_sent_lists_emulator_deliveries(local_stack: LocalStack) -> None:
    emulator = local_stack.emulator
    emulator.state.record_interaction("oLOCAL1")
    emulator.state.send_custom({"touser": "oLOCAL1", "msgtype": "text", "text": {"content": "您好"}})

    sent = requests.get(f"{local_stack.url}/_local/wechat/sent", timeout=5).json()

    assert sent[-1]["api"] == "message/custom/send"
    assert sent[-1]["touser"] == "oLOCAL1"
    assert sent[-1]["payload"]["text"]["content"] == "您好"


def test_wait_idle_returns_when_queues_empty(local_stack: LocalStack) -> None:
    local_stack.stack.client("sqs").send_message(
        QueueUrl=local_stack.stack.ref("WorkQueue"), MessageBody="ok-idle"
    )

    local_stack.wait_idle(timeout=10)

    bodies = [record.event["Records"][0]["body"] for record in local_stack.invocations("BatchFunction")]
    assert "ok-idle" in bodies


def test_config_from_environ_reads_make_local_variables() -> None:
    config = LocalStackConfig.from_environ(
        {"WECHAT_MESSAGE_MODE": "Plain", "LOCAL_PORT": "3100", "TICKET_COLLECTING_WINDOW_SECONDS": "60"}
    )

    assert config.message_mode == "plain"
    assert config.port == 3100
    assert config.collecting_window_seconds == 60
    assert config.wechat_token == "AAAAA"


def test_config_from_environ_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="WECHAT_MESSAGE_MODE"):
        LocalStackConfig.from_environ({"WECHAT_MESSAGE_MODE": "secret"})
