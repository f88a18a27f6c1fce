"""The local API Gateway router: routes from the template, proxy events, responses, 404 and 405."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.api_gateway import (
    LOCAL_STAFF_ARN,
    ApiGateway,
    ApiGatewayServer,
    Route,
    SigV4RequestAuth,
    api_routes,
    build_proxy_event,
    parse_request,
    proxy_response,
)
from devstack.function_pool import Invocation
from devstack.template import load_template


class RecordingInvoker:
    """Stands in for the function pools: records each event and returns a fixed proxy response."""

    def __init__(self, result: Any = None, ok: bool = True) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.result = result or {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}
        self.ok = ok

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation:
        self.events.append((function, event))
        return Invocation(function=function, source="api", request_id="r", ok=self.ok, result=self.result)


ROUTES = [
    Route("WebhookVerifyFunction", "UrlCheck", "GET", "/wechat", iam_auth=False),
    Route("MessageIngestFunction", "Push", "POST", "/wechat", iam_auth=False),
    Route("StaffApiFunction", "GetTicket", "GET", "/tickets/{ticket_id}", iam_auth=True),
    Route("StaffApiFunction", "Open311", "GET", "/open311/v2/{proxy+}", iam_auth=True),
]


@pytest.fixture
def invoker() -> RecordingInvoker:
    return RecordingInvoker()


@pytest.fixture
def server(invoker: RecordingInvoker) -> Iterator[ApiGatewayServer]:
    running = ApiGatewayServer(ApiGateway(ROUTES, invoker), port=0).start()
    yield running
    running.stop()


def test_api_routes_from_template_have_auth_per_event() -> None:
    routes = {(route.method, route.resource): route for route in api_routes(load_template())}

    assert routes[("GET", "/wechat")].iam_auth is False
    assert routes[("POST", "/wechat")].iam_auth is False
    assert routes[("GET", "/tickets/{ticket_id}")].iam_auth is True
    assert routes[("GET", "/open311/v2/{proxy+}")].function == "StaffApiFunction"


def test_route_path_parameter_is_decoded() -> None:
    route = ROUTES[2]

    parameters = route.match("/tickets/DG%2020261204-0001")

    assert parameters == {"ticket_id": "DG 20261204-0001"}
    assert route.match("/tickets/a/b") is None


def test_route_greedy_proxy_matches_several_segments() -> None:
    parameters = ROUTES[3].match("/open311/v2/requests/42.json")

    assert parameters == {"proxy": "requests/42.json"}


def test_stage_prefix_and_root_paths_are_equivalent() -> None:
    staged = parse_request("GET", "/api/wechat?a=1", [], b"", "127.0.0.1")
    root = parse_request("GET", "/wechat?a=1", [], b"", "127.0.0.1")

    assert staged.path == root.path == "/wechat"
    assert staged.stage_path == root.stage_path == "/api/wechat"


def test_proxy_event_has_single_and_multi_value_query() -> None:
    request = parse_request(
        "GET", "/api/tickets/T1?status=a&status=b&page=2", [("Host", "x")], b"", "127.0.0.1"
    )

    event = build_proxy_event(request, ROUTES[2], {"ticket_id": "T1"})

    assert event["queryStringParameters"] == {"status": "b", "page": "2"}
    assert event["multiValueQueryStringParameters"] == {"status": ["a", "b"], "page": ["2"]}
    assert event["pathParameters"] == {"ticket_id": "T1"}
    assert event["resource"] == "/tickets/{ticket_id}"
    assert event["path"] == "/tickets/T1"
    assert event["requestContext"]["path"] == "/api/tickets/T1"
    assert event["requestContext"]["stage"] == "api"


def test_proxy_event_base64_encodes_non_utf8_body() -> None:
    request = parse_request("POST", "/wechat", [], b"\xff\xfe\x00binary", "127.0.0.1")

    event = build_proxy_event(request, ROUTES[1], {})

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00binary"


def test_proxy_event_keeps_utf8_text_body() -> None:
    request = parse_request("POST", "/wechat", [], "<xml>路灯</xml>".encode(), "127.0.0.1")

    event = build_proxy_event(request, ROUTES[1], {})

    assert event["isBase64Encoded"] is False
    assert event["body"] == "<xml>路灯</xml>"


def test_iam_route_carries_local_staff_identity() -> None:
    request = parse_request("GET", "/tickets/T1", [], b"", "127.0.0.1")

    staff = build_proxy_event(request, ROUTES[2], {"ticket_id": "T1"})
    public = build_proxy_event(request, ROUTES[0], {})

    assert staff["requestContext"]["identity"]["userArn"] == LOCAL_STAFF_ARN
    assert staff["requestContext"]["identity"]["caller"]
    assert public["requestContext"]["identity"]["userArn"] is None


def test_proxy_response_decodes_base64_and_merges_headers() -> None:
    invocation = Invocation(
        function="f",
        source="api",
        request_id="r",
        ok=True,
        result={
            "statusCode": 201,
            "headers": {"Content-Type": "image/png"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        },
    )

    response = proxy_response(invocation)

    assert response.status == 201
    assert response.body == b"\x89PNG"
    assert ("Set-Cookie", "a=1") in response.headers
    assert ("Set-Cookie", "b=2") in response.headers
    assert ("Content-Type", "image/png") in response.headers


def test_proxy_response_of_failed_invocation_is_502() -> None:
    invocation = Invocation(function="f", source="api", request_id="r", ok=False, error_type="Boom")

    response = proxy_response(invocation)

    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}


def test_proxy_response_without_status_code_is_502() -> None:
    invocation = Invocation(function="f", source="api", request_id="r", ok=True, result={"body": "x"})

    assert proxy_response(invocation).status == 502


def test_server_routes_request_to_function(server: ApiGatewayServer, invoker: RecordingInvoker) -> None:
    response = requests.get(
        f"{server.url}/api/open311/v2/services.json?jurisdiction_id=dg", timeout=5, auth=SigV4RequestAuth()
    )

    assert response.status_code == 200
    assert response.text == "ok"
    function, event = invoker.events[0]
    assert function == "StaffApiFunction"
    assert event["pathParameters"] == {"proxy": "services.json"}
    assert event["queryStringParameters"] == {"jurisdiction_id": "dg"}


def test_server_unknown_path_is_404_json(server: ApiGatewayServer, invoker: RecordingInvoker) -> None:
    response = requests.get(f"{server.url}/api/nothing/here", timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "message" in response.json()
    assert invoker.events == []


def test_server_wrong_method_is_405_json(server: ApiGatewayServer, invoker: RecordingInvoker) -> None:
    response = requests.delete(f"{server.url}/api/wechat", timeout=5)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert "message" in response.json()
    assert invoker.events == []


def test_server_passes_binary_body_base64(server: ApiGatewayServer, invoker: RecordingInvoker) -> None:
    requests.post(f"{server.url}/wechat", data=b"\x00\xff\xfe", timeout=5)

    _, event = invoker.events[0]

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff\xfe"


def test_malformed_proxy_response_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    invocation = Invocation(function="StaffApiFunction", source="api", request_id="r", ok=True, result=["x"])

    with caplog.at_level("ERROR", logger="devstack.api_gateway"):
        response = proxy_response(invocation)

    assert response.status == 502
    assert "StaffApiFunction returned a malformed proxy response" in caplog.text
