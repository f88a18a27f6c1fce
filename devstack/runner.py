"""The local stack: template.yaml's resources on moto's server and its functions in worker processes.

`LocalStack(config).start()` starts, all on 127.0.0.1: moto in server mode, the WeChat API
emulator, every resource of the template (`devstack.resources.create_stack`), one worker pool per
function, the API Gateway router, the SQS pollers and the schedules. `python -m devstack` runs it in
the foreground; the demo and the integration tests use this class directly.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from devstack.api_gateway import (
    ApiGateway,
    ApiGatewayServer,
    HttpRequest,
    HttpResponse,
    LocalRoute,
    api_routes,
)
from devstack.event_sources import SqsPoller, sqs_mappings
from devstack.fault_proxy import FaultPlan, FaultProxy
from devstack.function_pool import FunctionPool, Invocation, InvocationLog, worker_environment
from devstack.moto_server import LOCAL_REGION, MotoServer, fake_aws_environment
from devstack.ops.knowledge_import import seed_local_stack
from devstack.resources import Stack, create_stack
from devstack.scheduler import Scheduler, UnknownScheduleError, schedules
from devstack.template import TEMPLATE_PATH, FunctionSpec, function_specs, load_template
from devstack.wechat_emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, WeChatEmulator, start_emulator

MESSAGE_MODES = ("plain", "compatible", "safe")

# Concurrent workers per function with an API route, so that WeChat's retries of a push, which
# arrive while the first attempt still runs, really run in parallel.
API_CONCURRENCY = 4
# SQS and schedule functions: one poller batch at a time plus a manual schedule run.
BACKGROUND_CONCURRENCY = 2

logger = logging.getLogger(__name__)


@dataclass
class LocalStackConfig:
    """Settings of one local stack; `from_environ` reads the variables that `make local` documents."""

    # The defaults are the Token, AppID and EncodingAESKey of WeChat's official test vector.
    wechat_token: str = "AAAAA"  # noqa: S105 - a local test credential
    app_id: str = DEFAULT_APP_ID
    app_secret: str = DEFAULT_APP_SECRET
    encoding_aes_key: str = "A" * 43
    original_id: str = "gh_97417a04a28d"
    message_mode: str = "safe"
    port: int = 3000
    emulator_port: int = 0
    collecting_window_seconds: int | None = None
    template_path: Path = TEMPLATE_PATH
    stack_name: str = "wechat-intake-local"
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    schedules: bool = True
    run_schedules_at_start: bool = True
    api_concurrency: int = API_CONCURRENCY
    # Cold-start one worker of every API function before the stack reports ready, because a cold
    # start on this runner can take several seconds of WeChat's 5-second response limit.
    prewarm_api_functions: bool = True
    # Scales every function's Timeout; above 1 only to keep tests stable on a loaded machine.
    timeout_multiplier: float = 1.0
    # VisibilityTimeout by queue logical id, set before any message is sent. The reliability harness
    # shortens the template's 180-720 s so that failed batches come back within its run.
    queue_visibility_timeouts: dict[str, int] = field(default_factory=dict)
    # Timeout in seconds by function logical id, replacing the template's; the multiplier still applies.
    function_timeouts: dict[str, int] = field(default_factory=dict)
    # Variables added to every worker's environment, e.g. settings the template leaves at defaults.
    function_environment: dict[str, str] = field(default_factory=dict)
    # Concurrent pollers per SQS event source. Lambda polls a queue with several pollers (for a FIFO
    # queue, up to one batch per message group in flight); one poller keeps the local stack light.
    sqs_pollers: int = 1
    # When set, the functions reach AWS through `devstack.fault_proxy`, which injects these faults.
    aws_fault_plan: FaultPlan | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> LocalStackConfig:
        environ = dict(os.environ if environ is None else environ)
        defaults = cls()
        window = environ.get("TICKET_COLLECTING_WINDOW_SECONDS", "").strip()
        mode = environ.get("WECHAT_MESSAGE_MODE", defaults.message_mode).strip().lower()
        if mode not in MESSAGE_MODES:
            raise ValueError(f"WECHAT_MESSAGE_MODE must be one of {', '.join(MESSAGE_MODES)}, got {mode!r}")
        return cls(
            wechat_token=environ.get("WECHAT_TOKEN", defaults.wechat_token),
            app_id=environ.get("WECHAT_APP_ID", defaults.app_id),
            app_secret=environ.get("WECHAT_APP_SECRET", defaults.app_secret),
            encoding_aes_key=environ.get("WECHAT_ENCODING_AES_KEY", defaults.encoding_aes_key),
            original_id=environ.get("WECHAT_ORIGINAL_ID", defaults.original_id),
            message_mode=mode,
            port=int(environ.get("LOCAL_PORT", defaults.port)),
            emulator_port=int(environ.get("LOCAL_WECHAT_PORT", defaults.emulator_port)),
            collecting_window_seconds=int(window) if window else None,
        )

    def credentials(self) -> dict[str, str]:
        """Return the JSON document of the template's WeChatSecret (see intake.credentials)."""
        return {
            "token": self.wechat_token,
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "encoding_aes_key": self.encoding_aes_key,
            "original_id": self.original_id,
        }


class LocalStack:
    """The running local stack; also a context manager that stops everything on exit."""

    def __init__(self, config: LocalStackConfig | None = None) -> None:
        self.config = config or LocalStackConfig()
        self.invocation_log = InvocationLog()
        self.moto: MotoServer | None = None
        self.emulator: WeChatEmulator | None = None
        self.stack: Stack | None = None
        self.fault_proxy: FaultProxy | None = None
        self.pools: dict[str, FunctionPool] = {}
        self._gateway_server: ApiGatewayServer | None = None
        self._pollers: list[SqsPoller] = []
        self._scheduler: Scheduler | None = None
        self._template: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = self.config
        self._template = load_template(config.template_path)
        self.moto = MotoServer().start()
        self.emulator = start_emulator(config.emulator_port, config.app_id, config.app_secret)
        fake = fake_aws_environment(self.moto.url)
        session = boto3.session.Session(
            region_name=LOCAL_REGION,
            aws_access_key_id=fake["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=fake["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=fake["AWS_SESSION_TOKEN"],
        )
        secret_values = {}
        if "WeChatSecret" in self._template["Resources"]:
            secret_values["WeChatSecret"] = json.dumps(config.credentials())
        self.stack = create_stack(
            session,
            endpoint_url=self.moto.url,
            parameter_overrides=self._parameter_overrides(),
            secret_values=secret_values,
            template=self._template,
            stack_name=config.stack_name,
        )
        logger.info("created %d resources from %s", len(self.stack.created), config.template_path.name)
        seed_local_stack(self.stack)
        self._set_visibility_timeouts()
        if config.aws_fault_plan is not None:
            self.fault_proxy = FaultProxy(self.moto.url, config.aws_fault_plan).start()

        for spec in self._function_specs():
            has_api = any(event.get("Type") == "Api" for event in spec.events.values())
            concurrency = (
                config.api_concurrency if has_api else max(BACKGROUND_CONCURRENCY, config.sqs_pollers + 1)
            )
            self.pools[spec.logical_id] = FunctionPool(
                spec, self._environment(spec), concurrency, self.invocation_log, config.timeout_multiplier
            )
            if not self.pools[spec.logical_id].present:
                logger.warning(
                    "%s: %s does not exist yet; its invocations fail and its event sources are off",
                    spec.logical_id,
                    spec.code_uri / f"{spec.module_name}.py",
                )

        self._prewarm()
        self._gateway_server = ApiGatewayServer(
            ApiGateway(api_routes(self._template), self._invoke_from_api, self._local_routes()), config.port
        ).start()
        self._start_pollers()
        self._scheduler = Scheduler(
            schedules(self._events(), config.stack_name, LOCAL_REGION),
            lambda function, event: self.invoke(function, event, "schedule"),
            run_at_start=config.run_schedules_at_start,
        )
        if config.schedules:
            self._scheduler.start(present=lambda function: self.pools[function].present)

    def _prewarm(self) -> None:
        if not self.config.prewarm_api_functions:
            return
        threads = [
            threading.Thread(target=pool.prewarm, name=f"prewarm-{logical_id}", daemon=True)
            for logical_id, pool in self.pools.items()
            if any(event.get("Type") == "Api" for event in pool.spec.events.values())
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _function_specs(self) -> list[FunctionSpec]:
        assert self.stack is not None
        specs = function_specs(self.stack.template, self.stack.resolver)
        for spec in specs:
            if spec.logical_id in self.config.function_timeouts:
                spec.timeout = self.config.function_timeouts[spec.logical_id]
        return specs

    def _set_visibility_timeouts(self) -> None:
        assert self.stack is not None
        sqs = self.stack.client("sqs")
        for logical_id, seconds in self.config.queue_visibility_timeouts.items():
            sqs.set_queue_attributes(
                QueueUrl=self.stack.ref(logical_id), Attributes={"VisibilityTimeout": str(seconds)}
            )

    def _parameter_overrides(self) -> dict[str, str]:
        assert self.emulator is not None
        config = self.config
        wanted = {"MessageMode": config.message_mode, "WeChatApiBase": self.emulator.url}
        if config.collecting_window_seconds is not None:
            wanted["CollectingWindowSeconds"] = str(config.collecting_window_seconds)
        wanted.update(config.parameter_overrides)
        known = self._template.get("Parameters", {})
        return {name: value for name, value in wanted.items() if name in known}

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        assert self.moto is not None
        assert self.emulator is not None
        endpoint = self.fault_proxy.url if self.fault_proxy is not None else self.moto.url
        return worker_environment(
            spec,
            fake_aws_environment(endpoint),
            {
                **self.config.function_environment,
                "INTAKE_LOCAL_STACK": "1",
                "WECHAT_API_BASE": self.emulator.url,
            },
            self.config.stack_name,
        )

    def _events(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {logical_id: pool.spec.events for logical_id, pool in self.pools.items()}

    def _start_pollers(self) -> None:
        assert self.stack is not None
        queue_urls_by_arn = {
            self.stack.attribute(logical_id, "Arn"): url for logical_id, url in self.stack.queues().items()
        }
        for mapping in sqs_mappings(self._events(), queue_urls_by_arn):
            if not self.pools[mapping.function].present:
                continue
            for _ in range(max(1, self.config.sqs_pollers)):
                poller = SqsPoller(
                    mapping,
                    self.stack.client("sqs"),
                    lambda function, event: self.invoke(function, event, "sqs"),
                    LOCAL_REGION,
                )
                self._pollers.append(poller.start())

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
        for poller in self._pollers:
            poller.stop()
        for poller in self._pollers:
            poller.join(timeout=5)
        self._pollers = []
        if self._gateway_server is not None:
            self._gateway_server.stop()
            self._gateway_server = None
        for pool in self.pools.values():
            pool.close()
        if self.fault_proxy is not None:
            self.fault_proxy.stop()
            self.fault_proxy = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        logger.info("local stack stopped")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._gateway_server is not None, "start() the local stack first"
        return self._gateway_server.url

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/wechat"

    @property
    def emulator_url(self) -> str:
        assert self.emulator is not None, "start() the local stack first"
        return self.emulator.url

    @property
    def moto_url(self) -> str:
        assert self.moto is not None, "start() the local stack first"
        return self.moto.url

    # -- operations ------------------------------------------------------------------------------------

    def invoke(self, function: str, event: Any, source: str = "direct") -> Invocation:
        """Invoke a function by logical id and wait for its result, as a synchronous Lambda invoke."""
        if function not in self.pools:
            raise KeyError(
                f"template has no function {function!r}; functions: {', '.join(sorted(self.pools))}"
            )
        return self.pools[function].invoke(event, source)

    def _invoke_from_api(self, function: str, event: dict[str, Any]) -> Invocation:
        return self.invoke(function, event, "api")

    def run_schedule(self, name: str) -> Invocation:
        """Run a schedule now: `name` is the function's logical id, `Function.Event` or the event name."""
        assert self._scheduler is not None, "start() the local stack first"
        return self._scheduler.run_now(name)

    def update_parameters(self, **overrides: str) -> None:
        """Change template parameters (for example MessageMode) and cold-start every function again."""
        assert self.stack is not None
        self.config.parameter_overrides.update(overrides)
        self.stack.resolver.parameters.update(self._parameter_overrides())
        for spec in self._function_specs():
            pool = self.pools[spec.logical_id]
            environment = self._environment(spec)
            if environment != pool.environment or spec.events != pool.spec.events:
                pool.reconfigure(spec, environment)
        self._prewarm()

    def invocations(self, function: str | None = None) -> list[Invocation]:
        return self.invocation_log.records(function)

    def source_queue_urls(self) -> list[str]:
        return list(dict.fromkeys(poller.mapping.queue_url for poller in self._pollers))

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no invocation runs and every polled queue is empty; raises TimeoutError."""
        assert self.stack is not None
        sqs = self.stack.client("sqs")
        deadline = time.monotonic() + timeout
        quiet_checks = 0
        busy: list[str] = []
        while time.monotonic() < deadline:
            busy = [] if self.invocation_log.in_flight == 0 else ["invocations in flight"]
            for url in self.source_queue_urls():
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )["Attributes"]
                if any(int(value) for value in attributes.values()):
                    busy.append(url.rsplit("/", 1)[-1])
            quiet_checks = 0 if busy else quiet_checks + 1
            if quiet_checks >= 2:
                return
            time.sleep(0.1)
        raise TimeoutError(f"local stack still busy after {timeout:.0f} s: {', '.join(busy)}")

    # -- /_local control endpoints ---------------------------------------------------------------------

    def _local_routes(self) -> list[LocalRoute]:
        return [
            LocalRoute("POST", "/_local/schedule/{name}", self._run_schedule_endpoint),
            LocalRoute("GET", "/_local/wechat/sent", self._sent_endpoint),
            LocalRoute("GET", "/_local/invocations", self._invocations_endpoint),
            LocalRoute("GET", "/_local/info", self._info_endpoint),
            LocalRoute(
                "GET",
                "/_local/health",
                lambda request, parameters: HttpResponse.json(200, {"status": "ready"}),
            ),
        ]

    def _run_schedule_endpoint(self, request: HttpRequest, parameters: dict[str, str]) -> HttpResponse:
        try:
            invocation = self.run_schedule(parameters["name"])
        except UnknownScheduleError as error:
            return HttpResponse.json(404, {"message": error.args[0]})
        if not invocation.ok:
            return HttpResponse.json(502, invocation.error_document())
        return HttpResponse.json(200, invocation.result)

    def _info_endpoint(self, request: HttpRequest, parameters: dict[str, str]) -> HttpResponse:
        return HttpResponse.json(
            200,
            {
                "webhook_url": self.webhook_url,
                "emulator_url": self.emulator_url,
                "moto_url": self.moto_url,
                "message_mode": self.stack.resolver.parameters.get("MessageMode") if self.stack else None,
            },
        )

    def _sent_endpoint(self, request: HttpRequest, parameters: dict[str, str]) -> HttpResponse:
        assert self.emulator is not None
        return HttpResponse.json(200, self.emulator.sent)

    def _invocations_endpoint(self, request: HttpRequest, parameters: dict[str, str]) -> HttpResponse:
        summary = [
            {
                "function": record.function,
                "source": record.source,
                "request_id": record.request_id,
                "ok": record.ok,
                "error_type": record.error_type,
                "cold_start": record.cold_start,
                "duration_ms": round(record.duration_ms, 1),
            }
            for record in self.invocations()
        ]
        return HttpResponse.json(200, summary)
