"""API Gateway REST API emulation: routes from the functions' `Api` events, proxy events, responses.

The server accepts each route under the stage prefix (`/api/wechat`) and at the root (`/wechat`).
Routes whose authorizer is AWS_IAM require a SigV4 `Authorization` header for the service
`execute-api`, signed with the local stack's fake credentials (`LOCAL_CREDENTIALS`, the ones moto
accepts). `SigV4Verifier` checks it with botocore's signer; a request without one, or with a wrong
or expired signature, gets API Gateway's 403 response, using the template's GatewayResponses when
given. Events of verified requests carry the local staff identity in `requestContext.identity`.
Clients sign with `SigV4RequestAuth` (a `requests` auth). Paths under `/_local/` belong to the local
stack's control endpoints (`local_routes`).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.function_pool import Invocation
from devstack.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, load_template

STAGE = "api"
LOCAL_API_ID = "local"

# The identity an AWS_IAM route sees locally, in place of the SigV4-signed caller.
LOCAL_STAFF_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/local-staff"
LOCAL_STAFF_PRINCIPAL_ID = "AIDALOCALSTAFF000000"
LOCAL_STAFF_ACCESS_KEY = "AKIALOCALSTAFF000000"


@dataclass(frozen=True)
class LocalCredentials:
    access_key: str
    secret_key: str
    token: str | None = None


# The fake credentials of the local stack (devstack.moto_server.fake_aws_environment).
LOCAL_CREDENTIALS = LocalCredentials("testing", "testing", "testing")
SIGV4_SERVICE = "execute-api"
# API Gateway rejects a signature whose X-Amz-Date is more than 5 minutes away from its clock.
MAX_SIGNATURE_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>[0-9]{8})/(?P<region>[^/\s]+)/"
    r"(?P<service>[^/\s]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)

# API Gateway's own responses when no GatewayResponses are configured: (status, body, error type).
DEFAULT_GATEWAY_RESPONSES: dict[str, tuple[int, dict[str, Any], str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (
        403,
        {"message": "Missing Authentication Token"},
        "MissingAuthenticationTokenException",
    ),
    "INVALID_SIGNATURE": (
        403,
        {"message": "The request signature we calculated does not match the signature you provided."},
        "InvalidSignatureException",
    ),
    "UNAUTHORIZED": (401, {"message": "Unauthorized"}, "UnauthorizedException"),
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """One `Api` event: which function serves which method and path template."""

    function: str
    event_name: str
    method: str  # upper case, or ANY
    resource: str  # the path template, for example /tickets/{ticket_id}
    iam_auth: bool

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.resource.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                parts.append(f"(?P<{segment[1:-2]}>.+)")
            elif segment.startswith("{") and segment.endswith("}"):
                parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        return re.compile("^/" + "/".join(parts) + "/?$")

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def api_routes(template: dict[str, Any]) -> list[Route]:
    """Return every `Api` event of every function in the template, with its effective authorizer."""
    routes = []
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event.get("Type") != "Api":
                continue
            properties = event["Properties"]
            routes.append(
                Route(
                    function=logical_id,
                    event_name=event_name,
                    method=str(properties["Method"]).upper(),
                    resource="/" + str(properties["Path"]).strip("/"),
                    iam_auth=_authorizer(resources, properties) == "AWS_IAM",
                )
            )
    return routes


def _authorizer(resources: dict[str, Any], properties: dict[str, Any]) -> str:
    explicit = properties.get("Auth", {}).get("Authorizer")
    if explicit:
        return str(explicit)
    api_reference = properties.get("RestApiId")
    if isinstance(api_reference, dict) and "Ref" in api_reference:
        api = resources.get(api_reference["Ref"], {})
        return str(api.get("Properties", {}).get("Auth", {}).get("DefaultAuthorizer", "NONE"))
    return "NONE"


@dataclass
class HttpRequest:
    method: str
    path: str  # without the stage prefix and without the query string
    stage_path: str  # as API Gateway's requestContext.path reports it: /api/...
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    target: str = ""  # the raw request target (path and query) as the client sent and signed it


def build_proxy_event(
    request: HttpRequest,
    route: Route,
    path_parameters: dict[str, str],
    request_id: str | None = None,
) -> dict[str, Any]:
    """Build the REST API proxy integration event (payload version 1.0) for one request."""
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in request.query:
        multi_query.setdefault(name, []).append(value)

    body: str | None = None
    is_base64 = False
    if request.body:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            body = base64.b64encode(request.body).decode("ascii")
            is_base64 = True

    now = time.time()
    request_id = request_id or str(uuid.uuid4())
    headers_lower = {name.lower(): values[-1] for name, values in multi_headers.items()}
    identity: dict[str, Any] = {
        "sourceIp": request.source_ip,
        "userAgent": headers_lower.get("user-agent"),
        "accountId": None,
        "caller": None,
        "user": None,
        "userArn": None,
        "accessKey": None,
        "cognitoIdentityPoolId": None,
        "cognitoIdentityId": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
    }
    if route.iam_auth:
        identity.update(
            accountId=LOCAL_ACCOUNT_ID,
            caller=LOCAL_STAFF_PRINCIPAL_ID,
            user=LOCAL_STAFF_PRINCIPAL_ID,
            userArn=LOCAL_STAFF_ARN,
            accessKey=LOCAL_STAFF_ACCESS_KEY,
        )
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT_ID,
            "apiId": LOCAL_API_ID,
            "resourceId": route.event_name,
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "path": request.stage_path,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(now, tz=UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now * 1000),
            "domainName": headers_lower.get("host", "127.0.0.1"),
            "domainPrefix": LOCAL_API_ID,
            "identity": identity,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, status: int, document: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return cls(status, [("Content-Type", "application/json"), *(headers or [])], body)


def proxy_response(invocation: Invocation) -> HttpResponse:
    """Turn a function's proxy result into the HTTP response, or 502 as API Gateway does."""
    if not invocation.ok:
        return HttpResponse.json(502, {"message": "Internal server error"})
    result = invocation.result
    if not isinstance(result, dict) or "statusCode" not in result:
        logger.error("%s returned a malformed proxy response", invocation.function)
        return HttpResponse.json(502, {"message": "Internal server error"})

    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values)
    multi_names = {name.lower() for name, _ in headers}
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in multi_names:
            headers.append((name, str(value)))
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))

    raw_body = result.get("body") or ""
    body = base64.b64decode(raw_body) if result.get("isBase64Encoded") else str(raw_body).encode("utf-8")
    return HttpResponse(int(result["statusCode"]), headers, body)


class SigV4Verifier:
    """Checks the SigV4 signature of a request to an AWS_IAM route against known credentials."""

    def __init__(self, credentials: list[LocalCredentials], region: str = LOCAL_REGION) -> None:
        self._credentials = {credential.access_key: credential for credential in credentials}
        self._region = region

    def check(self, request: HttpRequest, now: datetime | None = None) -> tuple[str | None, str]:
        """Return (None, access key) for a valid signature, else (gateway response type, reason)."""
        headers = {name.lower(): value for name, value in request.headers}
        authorization = headers.get("authorization")
        if not authorization:
            return "MISSING_AUTHENTICATION_TOKEN", "no Authorization header"
        found = _AUTHORIZATION.fullmatch(authorization.strip())
        if found is None:
            return "INVALID_SIGNATURE", "Authorization is not an AWS4-HMAC-SHA256 signature"
        credential = self._credentials.get(found["key"])
        if credential is None:
            return "INVALID_SIGNATURE", "unknown access key"
        if found["service"] != SIGV4_SERVICE or found["region"] != self._region:
            return "INVALID_SIGNATURE", f"credential scope is not {self._region}/{SIGV4_SERVICE}"
        signed_names = found["headers"].split(";")
        if "host" not in signed_names or "x-amz-date" not in signed_names:
            return "INVALID_SIGNATURE", "host and x-amz-date must be signed"
        if any(name not in headers for name in signed_names):
            return "INVALID_SIGNATURE", "a signed header is missing"
        try:
            signed_at = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "INVALID_SIGNATURE", "X-Amz-Date is not ISO 8601 basic format"
        if abs((now or datetime.now(UTC)) - signed_at) > MAX_SIGNATURE_SKEW:
            return "INVALID_SIGNATURE", "signature expired"
        if found["date"] != headers["x-amz-date"][:8]:
            return "INVALID_SIGNATURE", "credential date is not the X-Amz-Date"
        if credential.token is not None and not hmac.compare_digest(
            headers.get("x-amz-security-token", "").encode(), credential.token.encode()
        ):
            return "INVALID_SIGNATURE", "missing or wrong X-Amz-Security-Token"
        expected = self._signature(request, headers, signed_names, credential)
        if not hmac.compare_digest(expected.encode(), found["signature"].encode()):
            return "INVALID_SIGNATURE", "signature does not match"
        return None, credential.access_key

    def _signature(
        self,
        request: HttpRequest,
        headers: dict[str, str],
        signed_names: list[str],
        credential: LocalCredentials,
    ) -> str:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        url = f"http://{headers['host']}{request.target or request.stage_path}"
        signed = AWSRequest(
            method=request.method,
            url=url,
            headers={name: headers[name] for name in signed_names},
            data=request.body,
        )
        signed.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(
            Credentials(credential.access_key, credential.secret_key, credential.token),
            SIGV4_SERVICE,
            self._region,
        )
        canonical = signer.canonical_request(signed)
        signature: str = signer.signature(signer.string_to_sign(signed, canonical), signed)
        return signature


class SigV4RequestAuth:
    """A `requests` auth that signs a request for an AWS_IAM route of the local API gateway."""

    def __init__(self, credentials: LocalCredentials = LOCAL_CREDENTIALS, region: str = LOCAL_REGION) -> None:
        self._credentials = credentials
        self._region = region

    def __call__(self, prepared: Any) -> Any:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {name: prepared.headers[name] for name in ("Content-Type",) if name in prepared.headers}
        request = AWSRequest(method=prepared.method, url=prepared.url, headers=headers, data=body)
        credentials = Credentials(
            self._credentials.access_key, self._credentials.secret_key, self._credentials.token
        )
        SigV4Auth(credentials, SIGV4_SERVICE, self._region).add_auth(request)
        for name, value in request.headers.items():
            prepared.headers[name] = value
        return prepared


def gateway_responses(template: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any], str]]:
    """Return the responses for failed authentication: the template's GatewayResponses over AWS's defaults."""
    answers = dict(DEFAULT_GATEWAY_RESPONSES)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        configured = resource.get("Properties", {}).get("GatewayResponses", {})
        for kind, (default_status, _, error_type) in DEFAULT_GATEWAY_RESPONSES.items():
            body = configured.get(kind, {}).get("ResponseTemplates", {}).get("application/json")
            if body:
                status = int(configured[kind].get("StatusCode", default_status))
                answers[kind] = (status, json.loads(body), error_type)
    return answers


LocalHandler = Callable[[HttpRequest, dict[str, str]], HttpResponse]


@dataclass(frozen=True)
class LocalRoute:
    """A control endpoint of the local stack under /_local/."""

    method: str
    resource: str
    handler: LocalHandler

    def match(self, path: str) -> dict[str, str] | None:
        return Route("", "", self.method, self.resource, iam_auth=False).match(path)


class ApiGateway:
    """Dispatches HTTP requests to the functions of matching routes, through `invoke`."""

    def __init__(
        self,
        routes: list[Route],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        local_routes: list[LocalRoute] | None = None,
        responses: dict[str, tuple[int, dict[str, Any], str]] | None = None,
        credentials: list[LocalCredentials] | None = None,
    ) -> None:
        self.routes = routes
        self.local_routes = local_routes or []
        self._invoke = invoke
        # The responses the deployed API sends: the GatewayResponses of template.yaml unless given.
        self._responses = responses or gateway_responses(load_template())
        self._verifier = SigV4Verifier(credentials or [LOCAL_CREDENTIALS])

    def _refuse(self, request: HttpRequest, kind: str, reason: str) -> HttpResponse:
        status, body, error_type = self._responses[kind]
        logger.info("rejected %s %s on an AWS_IAM route: %s", request.method, request.path, reason)
        return HttpResponse.json(status, body, [("x-amzn-ErrorType", error_type)])

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/_local/"):
            return self._handle_local(request)
        allowed: set[str] = set()
        for route in self.routes:
            path_parameters = route.match(request.path)
            if path_parameters is None:
                continue
            if route.method not in (request.method, "ANY"):
                allowed.add(route.method)
                continue
            if route.iam_auth:
                refusal, detail = self._verifier.check(request)
                if refusal is not None:
                    return self._refuse(request, refusal, detail)
            event = build_proxy_event(request, route, path_parameters)
            invocation = self._invoke(route.function, event)
            return proxy_response(invocation)
        if allowed:
            return HttpResponse.json(
                405,
                {"message": f"Method {request.method} not allowed on {request.path}"},
                [("Allow", ", ".join(sorted(allowed)))],
            )
        return HttpResponse.json(404, {"message": f"No route for {request.method} {request.path}"})

    def _handle_local(self, request: HttpRequest) -> HttpResponse:
        for route in self.local_routes:
            parameters = route.match(request.path)
            if parameters is not None and route.method == request.method:
                return route.handler(request, parameters)
        return HttpResponse.json(404, {"message": f"No local endpoint {request.method} {request.path}"})


def parse_request(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, ip: str
) -> HttpRequest:
    """Split a raw request target into the stage-less path, the stage path and the query."""
    parts = urlsplit(target)
    path = parts.path or "/"
    stage_prefix = f"/{STAGE}"
    if path == stage_prefix or path.startswith(stage_prefix + "/"):
        stage_path = path
        path = path[len(stage_prefix) :] or "/"
    else:
        stage_path = stage_prefix + path
    return HttpRequest(
        method=method.upper(),
        path=path,
        stage_path=stage_path,
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers=headers,
        body=body,
        source_ip=ip,
        target=target,
    )


class _RequestHandler(BaseHTTPRequestHandler):
    server: _GatewayHttpServer
    protocol_version = "HTTP/1.1"

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = parse_request(
            self.command, self.path, list(self.headers.items()), body, self.client_address[0]
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception:
            logger.exception("local API gateway failed on %s %s", request.method, request.path)
            response = HttpResponse.json(500, {"message": "local API gateway error; see the stack's log"})
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, as WeChat does after 5 s; the function's work still counts.
            logger.info(
                "client closed the connection before the answer to %s %s", request.method, request.path
            )
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("api gateway request: %s", format % args)


class _GatewayHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    gateway: ApiGateway


class ApiGatewayServer:
    """The threaded HTTP server on 127.0.0.1 in front of an `ApiGateway`."""

    def __init__(self, gateway: ApiGateway, port: int = 3000) -> None:
        self._server = _GatewayHttpServer(("127.0.0.1", port), _RequestHandler)
        self._server.gateway = gateway
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="api-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ApiGatewayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
