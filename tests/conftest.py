"""Fixtures shared by every test: emulated AWS (moto), the stack from template.yaml, handler loading."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
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


# -- log leak check ---------------------------------------------------------------------------------------
# Every test fails when a log line it produced names a citizen or contains a secret: a Powertools JSON line on
# stdout or stderr, or any stdlib log record, including the local stack's worker logs that
# devstack.function_pool forwards to the `devstack.function.*` loggers. Tests that print such values on
# purpose (an export's output, say) are not affected, because only log lines are read.

# Exact values the tests use: the stack's AppSecret and EncodingAESKey, and the official vectors' keys.
_VECTOR_KEYS = [
    value
    for vector in json.loads((FIXTURES / "wechat_test_vectors.json").read_text(encoding="utf-8")).values()
    for name, value in vector.items()
    if name == "key"
]
SENSITIVE_LOG_VALUES = frozenset(
    {DEFAULT_CREDENTIALS["app_secret"], DEFAULT_CREDENTIALS["encoding_aes_key"], *_VECTOR_KEYS}
    # Citizen message texts of the webhook, corpus and flood tests.
    | {"井盖丢了", "路灯不亮", "路面塌陷"}
)
SENSITIVE_LOG_PATTERNS = {
    # WeChat OpenIDs are 28 characters: "o" and 27 of [A-Za-z0-9_-].
    "OpenID": re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])"),
    # The shorter OpenIDs the tests make up ("oCitizen0001", "oStale"): "o", a capital, then more of an id.
    "test OpenID": re.compile(r"(?<![A-Za-z0-9_-])o[A-Z][A-Za-z0-9_-]{2,}(?![A-Za-z0-9_-])"),
    # Access tokens of the WeChat emulator (devstack.wechat_emulator).
    "access token": re.compile(r"LOCAL_[A-Za-z0-9_-]{40,}"),
}
_JSON_LOG_LINE = re.compile(r'^\{.*"level":\s*"[A-Z]+"')


def find_log_leaks(text: str) -> list[str]:
    """Return what in one log line must not be logged, each as a kind and a shortened value."""
    found = [f"secret or message text {value[:4]}..." for value in SENSITIVE_LOG_VALUES if value in text]
    for kind, pattern in SENSITIVE_LOG_PATTERNS.items():
        found += [f"{kind} {match.group(0)[:6]}..." for match in pattern.finditer(text)]
    return found


class LogLeakScan(logging.Handler):
    """Collects leaks from every log record and from the JSON log lines of captured output."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage() + " " + json.dumps(vars(record), default=str, ensure_ascii=False)
        except Exception:
            text = str(record.msg)
        for leak in find_log_leaks(text):
            self.leaks.append(f"log record of {record.name}: {leak}")

    def scan_output(self, sections: list[tuple[str, str]], when: str) -> None:
        for title, content in sections:
            if not title.endswith(f" {when}") or "Captured log" in title:
                continue
            for line in content.splitlines():
                if _JSON_LOG_LINE.match(line):
                    self.leaks += [f"{title.lower()}: {leak}" for leak in find_log_leaks(line)]

    def take(self) -> list[str]:
        leaks, self.leaks = self.leaks, []
        return leaks


_LOG_LEAK_SCAN = LogLeakScan()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_LOG_LEAK_SCAN)
    # Forwarded worker logs are INFO; without this level the root logger would never see them.
    logging.getLogger("devstack.function").setLevel(logging.INFO)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    _LOG_LEAK_SCAN.scan_output(report.sections, report.when)
    leaks = _LOG_LEAK_SCAN.take()
    if leaks and report.outcome != "skipped":
        report.outcome = "failed"
        report.longrepr = "log lines contain an OpenID, a message text, a token or a secret:\n" + "\n".join(
            sorted(set(leaks))
        )
