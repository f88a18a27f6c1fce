"""The staff API rejects unsigned requests: AWS_IAM on every staff route, enforced by the local gateway too.

The template check goes through `devstack.policy_check`. The local API gateway (devstack.api_gateway)
runs on 127.0.0.1 with a recording invoker in place of the functions, so each test shows whether a
request would have reached the staff API at all.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from devstack.api_gateway import (
    LOCAL_CREDENTIALS,
    ApiGateway,
    ApiGatewayServer,
    LocalCredentials,
    SigV4RequestAuth,
    api_routes,
    gateway_responses,
    parse_request,
)
from devstack.function_pool import Invocation
from devstack.policy_check import find_violations
from devstack.template import load_template

TEMPLATE = load_template()
STAFF_ROUTES = [route for route in api_routes(TEMPLATE) if route.function == "StaffApiFunction"]


class RecordingInvoker:
    """Stands in for the function pools: records each event and returns 200."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation:
        self.events.append((function, event))
        result = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}
        return Invocation(function=function, source="api", request_id="r", ok=True, result=result)


@pytest.fixture
def invoker() -> RecordingInvoker:
    return RecordingInvoker()


@pytest.fixture
def server(invoker: RecordingInvoker) -> Iterator[ApiGatewayServer]:
    running = ApiGatewayServer(ApiGateway(api_routes(TEMPLATE), invoker), port=0).start()
    yield running
    running.stop()


# -- the template -----------------------------------------------------------------------------------------


def test_every_staff_route_requires_aws_iam() -> None:
    # GIVEN the staff API's routes in template.yaml
    routes = STAFF_ROUTES

    # WHEN their authorizers are read
    unauthenticated = [f"{route.method} {route.resource}" for route in routes if not route.iam_auth]

    # THEN every one is AWS_IAM, and the policy check finds no route that skips it
    assert len(routes) >= 6
    assert unauthenticated == []
    assert [violation for violation in find_violations(TEMPLATE) if "AWS_IAM" in violation] == []


def test_policy_check_flags_a_staff_route_without_aws_iam() -> None:
    # GIVEN the template with one staff route's authorizer switched off
    template = copy.deepcopy(TEMPLATE)
    events = template["Resources"]["StaffApiFunction"]["Properties"]["Events"]
    first = next(iter(events.values()))
    first["Properties"]["Auth"] = {"Authorizer": "NONE"}

    # WHEN the policy check runs
    violations = find_violations(template)

    # THEN it reports that route
    assert any("skips AWS_IAM" in violation for violation in violations)


# -- the local API gateway ----------------------------------------------------------------------------------


def test_local_gateway_refuses_unsigned_staff_request(
    server: ApiGatewayServer, invoker: RecordingInvoker
) -> None:
    # GIVEN the local stack's API gateway

    # WHEN a staff route is called without a signature
    response = requests.get(f"{server.url}/api/tickets", timeout=5)

    # THEN API Gateway's missing-authentication response from the template comes back, and no function ran
    status, body, error_type = gateway_responses(TEMPLATE)["MISSING_AUTHENTICATION_TOKEN"]
    assert response.status_code == status == 403
    assert response.json() == body
    assert response.headers["x-amzn-ErrorType"] == error_type
    assert invoker.events == []


def test_local_gateway_accepts_signed_staff_request(
    server: ApiGatewayServer, invoker: RecordingInvoker
) -> None:
    # GIVEN a request signed with the local stack's credentials

    # WHEN a staff route is called with a query and a JSON body
    get = requests.get(
        f"{server.url}/api/tickets",
        params={"status": "submitted", "citizen": "o 1"},
        timeout=5,
        auth=SigV4RequestAuth(),
    )
    post = requests.post(
        f"{server.url}/api/tickets/DG20241204-0001/actions",
        json={"action": "reply", "actor": "li", "text": "已处理"},
        timeout=5,
        auth=SigV4RequestAuth(),
    )

    # THEN both reach the staff API with the local staff identity
    assert get.status_code == 200
    assert post.status_code == 200
    assert [function for function, _ in invoker.events] == ["StaffApiFunction", "StaffApiFunction"]
    assert invoker.events[0][1]["requestContext"]["identity"]["userArn"]


def test_local_gateway_webhook_needs_no_signature(
    server: ApiGatewayServer, invoker: RecordingInvoker
) -> None:
    # GIVEN the WeChat callback, which WeChat calls without AWS credentials

    # WHEN it is called unsigned
    response = requests.get(f"{server.url}/api/wechat", params={"echostr": "1"}, timeout=5)

    # THEN the gateway passes it on (the function checks WeChat's own signature)
    assert response.status_code == 200
    assert invoker.events[0][0] == "WebhookVerifyFunction"


class _Tampered(SigV4RequestAuth):
    """Signs the request, then changes it the way an attacker or a broken client would."""

    def __init__(self, change: str, credentials: LocalCredentials = LOCAL_CREDENTIALS) -> None:
        super().__init__(credentials)
        self.change = change

    def __call__(self, prepared: Any) -> Any:
        signed = super().__call__(prepared)
        if self.change == "query":
            signed.url = signed.url.replace("status=submitted", "status=closed")
        elif self.change == "body":
            signed.body = b'{"action": "close", "actor": "li"}'
            signed.headers["Content-Length"] = str(len(signed.body))
        elif self.change == "signature":
            value = signed.headers["Authorization"]
            signed.headers["Authorization"] = value[:-1] + ("0" if value[-1] != "0" else "1")
        elif self.change == "token":
            signed.headers["X-Amz-Security-Token"] = "other"
        elif self.change == "scheme":
            signed.headers["Authorization"] = "Bearer abc"
        return signed


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        (_Tampered("query"), "query changed after signing"),
        (_Tampered("body"), "body changed after signing"),
        (_Tampered("signature"), "one signature digit changed"),
        (_Tampered("token"), "wrong session token"),
        (_Tampered("scheme"), "not SigV4 at all"),
        (SigV4RequestAuth(LocalCredentials("testing", "wrong-secret", "testing")), "wrong secret key"),
        (SigV4RequestAuth(LocalCredentials("AKIAUNKNOWN", "testing", "testing")), "unknown access key"),
        (SigV4RequestAuth(region="cn-north-1"), "signed for another region"),
    ],
    ids=["query", "body", "signature", "token", "scheme", "secret", "access-key", "region"],
)
def test_local_gateway_refuses_bad_signature(
    auth: Any, reason: str, server: ApiGatewayServer, invoker: RecordingInvoker
) -> None:
    # GIVEN a staff request whose signature does not hold

    # WHEN it is sent
    response = requests.post(
        f"{server.url}/api/tickets/DG20241204-0001/actions?status=submitted",
        json={"action": "reply", "actor": "li", "text": "已处理"},
        timeout=5,
        auth=auth,
    )

    # THEN the template's invalid-signature response comes back and no function ran
    status, body, _ = gateway_responses(TEMPLATE)["INVALID_SIGNATURE"]
    assert response.status_code == status == 403, reason
    assert response.json() == body
    assert invoker.events == []


@pytest.mark.parametrize(("age_minutes", "status"), [(0, 200), (6, 403)], ids=["fresh", "six-minutes-old"])
def test_local_gateway_signature_expires(age_minutes: int, status: int, invoker: RecordingInvoker) -> None:
    # GIVEN a request signed correctly `age_minutes` ago
    gateway = ApiGateway(api_routes(TEMPLATE), invoker)
    url = "http://127.0.0.1:3000/api/tickets"
    signed = AWSRequest(method="GET", url=url, headers={"Host": "127.0.0.1:3000"})
    credentials = Credentials(
        LOCAL_CREDENTIALS.access_key, LOCAL_CREDENTIALS.secret_key, LOCAL_CREDENTIALS.token
    )
    old = datetime.now(UTC) - timedelta(minutes=age_minutes)
    signer = SigV4Auth(credentials, "execute-api", "us-east-1")
    signed.context["timestamp"] = old.strftime("%Y%m%dT%H%M%SZ")
    signed.headers["X-Amz-Date"] = signed.context["timestamp"]
    signed.headers["X-Amz-Security-Token"] = credentials.token
    signature = signer.signature(signer.string_to_sign(signed, signer.canonical_request(signed)), signed)
    scope = f"{LOCAL_CREDENTIALS.access_key}/{old:%Y%m%d}/us-east-1/execute-api/aws4_request"
    headers = [
        ("Host", "127.0.0.1:3000"),
        ("X-Amz-Date", signed.headers["X-Amz-Date"]),
        ("X-Amz-Security-Token", credentials.token),
        (
            "Authorization",
            f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date;x-amz-security-token, "
            f"Signature={signature}",
        ),
    ]

    # WHEN the gateway handles it now
    response = gateway.handle(parse_request("GET", "/api/tickets", headers, b"", "127.0.0.1"))

    # THEN only the fresh signature reaches the staff API (API Gateway allows 5 minutes of skew)
    assert response.status == status
    assert len(invoker.events) == (1 if status == 200 else 0)
