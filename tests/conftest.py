"""Fixtures shared by every test: emulated AWS (moto), the stack from template.yaml, handler loading."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.resources import Stack, create_stack
from devstack.template import function_specs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Official test vector V3 (safe mode): Token, EncodingAESKey and AppID used by the default stack.
DEFAULT_CREDENTIALS = {
    "token": "AAAAA",
    "app_id": "wx134c8103faa5a59e",
    "app_secret": "local-app-secret",
    "encoding_aes_key": "A" * 43,
    "original_id": "gh_97417a04a28d",
}


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every boto3 client at a fake account so no test can reach real AWS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "WeChatIntakeTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@pytest.fixture
def wechat_credentials() -> dict[str, str]:
    """The WeChat credentials the stack fixture stores in its secret; override to change them."""
    return dict(DEFAULT_CREDENTIALS)


@pytest.fixture
def stack_parameters() -> dict[str, str]:
    """Template parameter overrides for the stack fixture; override in a test module to change them."""
    return {"MessageMode": "safe"}


@pytest.fixture
def stack(wechat_credentials: dict[str, str], stack_parameters: dict[str, str]) -> Iterator[Stack]:
    """Every resource of template.yaml, created inside moto's in-process mock."""
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        yield create_stack(
            session,
            parameter_overrides=stack_parameters,
            secret_values={"WeChatSecret": json.dumps(wechat_credentials)},
        )


def _reset_process_caches() -> None:
    from aws_lambda_powertools.utilities.parameters.base import clear_caches

    clear_caches()
    for name in [module for module in sys.modules if module == "intake" or module.startswith("intake.")]:
        module = sys.modules[name]
        for value in vars(module).values():
            if isinstance(value, type):
                continue  # a class's cache_clear is an unbound method; its instances are cleared
            cache_clear = getattr(value, "cache_clear", None)
            if callable(cache_clear):
                cache_clear()


@pytest.fixture
def load_function(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Return a loader that imports a function's handler module as a cold start would.

    The loader sets the environment that template.yaml gives the function (plus `extra_env`),
    clears the process-wide caches and imports the module under a unique name, so module-level
    clients bind to the current moto mock.
    """
    specs = {spec.logical_id: spec for spec in function_specs(stack.template, stack.resolver)}

    def load(logical_id: str, extra_env: dict[str, str] | None = None) -> ModuleType:
        spec = specs[logical_id]
        for key, value in {**spec.environment, **(extra_env or {})}.items():
            monkeypatch.setenv(key, value)
        _reset_process_caches()
        # Lambda puts the function's folder on sys.path, so a handler imports its sibling modules by
        # name; they are imported afresh, like the handler, to bind to the current moto mock.
        monkeypatch.syspath_prepend(str(spec.code_uri))
        for name, loaded in list(sys.modules.items()):
            if Path(getattr(loaded, "__file__", None) or "/").parent == Path(spec.code_uri):
                del sys.modules[name]
        module_name = f"lambda_{logical_id}"
        module_spec = importlib.util.spec_from_file_location(
            module_name, spec.code_uri / f"{spec.module_name}.py"
        )
        assert module_spec is not None
        assert module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        return module

    return load


class FakeLambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    def __init__(self, function_name: str = "test-function", timeout_ms: int = 30_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._timeout_ms = timeout_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def read_fixture(name: str) -> Any:
    path = FIXTURES / name
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return path.read_text(encoding="utf-8")


def drain_event_details(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete every message on a queue fed by EventBridge; return each event's `detail`."""
    found = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"])["detail"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found
