"""Pushes and URL checks built exactly as the WeChat platform sends them.

Used by the tests, by `devstack.make_events` (the committed `events/`) and by the simulator CLI.
Encryption goes through wechatpy's `WeChatCrypto`, an implementation independent of
`intake.crypto`, so the webhook is checked against someone else's reading of the protocol.

What WeChat sends for a push (Official Account, "消息加解密方式"):
- plain (明文): query `signature, timestamp, nonce, openid`; body = the message XML;
- compatible (兼容): query adds `encrypt_type=aes, msg_signature`; body = the message XML with an
  `<Encrypt>` element added;
- safe (安全): same query; body = `<xml><ToUserName>..</ToUserName><Encrypt>..</Encrypt></xml>`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

MODES = ("plain", "compatible", "safe")
DEFAULT_HOST = "wechat-intake.execute-api.us-east-1.amazonaws.com"
DEFAULT_STAGE = "api"


@dataclass(frozen=True)
class PushRequest:
    query: dict[
        str, str
    ]  # signature, timestamp, nonce, openid, and encrypt_type/msg_signature when encrypted
    body: str  # the XML body as WeChat sends it in that mode


def request_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's `signature`, written out here rather than imported, so the webhook's is checked."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324


def _cdata(text: str) -> str:
    # "]]>" cannot appear inside a CDATA section: close it and open a new one around the ">".
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: str | int | float) -> str:
    if isinstance(value, str):
        return f"<{name}>{_cdata(value)}</{name}>"
    if isinstance(value, bool):
        return f"<{name}>{int(value)}</{name}>"
    return f"<{name}>{value}</{name}>"


def message_xml(
    msg_type: str, open_id: str, original_id: str, create_time: int, **fields: str | int | float
) -> str:
    """Render a push's XML: strings in CDATA, numbers bare; fields take WeChat's element names."""
    elements = [
        _element("ToUserName", original_id),
        _element("FromUserName", open_id),
        _element("CreateTime", int(create_time)),
        _element("MsgType", msg_type),
        *(_element(name, value) for name, value in fields.items()),
    ]
    return "<xml>" + "\n".join(elements) + "\n</xml>"


def _element_text(xml: str, name: str) -> str | None:
    match = re.search(rf"<{name}>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</{name}>", xml, re.DOTALL)
    if match is None:
        return None
    return match.group(1) if match.group(1) is not None else match.group(2)


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


def build_push(
    xml: str,
    *,
    mode: str,
    token: str,
    encoding_aes_key: str,
    app_id: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> PushRequest:
    """Return the query and body WeChat sends for message `xml` in `mode`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or _nonce()
    query = {"signature": request_signature(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
    open_id = _element_text(xml, "FromUserName")
    if open_id:
        query["openid"] = open_id
    if mode == "plain":
        return PushRequest(query=query, body=xml)

    from wechatpy.crypto import WeChatCrypto

    reply = WeChatCrypto(token, encoding_aes_key, app_id).encrypt_message(xml, nonce, stamp)
    encrypt = _element_text(reply, "Encrypt")
    msg_signature = _element_text(reply, "MsgSignature")
    if encrypt is None or msg_signature is None:
        raise RuntimeError(f"unexpected wechatpy output: {reply!r}")
    query.update({"encrypt_type": "aes", "msg_signature": msg_signature})
    if mode == "safe":
        to_user = _element_text(xml, "ToUserName") or ""
        body = (
            "<xml>\n"
            f"    <ToUserName>{_cdata(to_user)}</ToUserName>\n"
            f"    <Encrypt>{_cdata(encrypt)}</Encrypt>\n"
            "</xml>"
        )
    else:
        head, _, _ = xml.rpartition("</xml>")
        body = f"{head}<Encrypt>{_cdata(encrypt)}</Encrypt>\n</xml>"
    return PushRequest(query=query, body=body)


def build_url_check(
    token: str, echostr: str, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """Return the query of WeChat's server URL check (GET), the same in every message mode."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or _nonce()
    return {
        "signature": request_signature(token, stamp, nonce),
        "echostr": echostr,
        "timestamp": stamp,
        "nonce": nonce,
    }


@contextmanager
def deterministic_random(seed: str) -> Iterator[None]:
    """Make wechatpy's 16-character random prefix a function of `seed`, for reproducible fixtures."""
    from wechatpy.crypto import PrpCrypto

    counter = iter(range(1_000_000))

    def random_string(_self: Any) -> str:
        digest = hashlib.sha256(f"{seed}:{next(counter)}".encode()).hexdigest()
        return digest[:16]

    with mock.patch.object(PrpCrypto, "get_random_string", random_string):
        yield


def api_gateway_event(
    method: str,
    path: str,
    query: dict[str, str] | None,
    body: str | None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
    path_parameters: dict[str, str] | None = None,
    resource: str | None = None,
) -> dict[str, Any]:
    """Return a complete API Gateway REST proxy event (payload version 1.0).

    With `base64_body`, `body` is base64-encoded here, as API Gateway does for binary media types.
    The event is a pure function of its arguments (the request id is derived from them), so
    committed fixtures are reproducible.
    """
    method = method.upper()
    if headers is None:
        headers = {"Host": DEFAULT_HOST, "User-Agent": "Mozilla/4.0", "Accept": "*/*"}
        if body is not None:
            headers["Content-Type"] = "text/xml"
    wire_body = body
    if body is not None and base64_body:
        wire_body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    resource = resource or path
    fingerprint = "\n".join([method, path, repr(sorted((query or {}).items())), body or ""])
    digest = hashlib.sha256(fingerprint.encode("utf-8", "surrogatepass")).digest()
    request_id = str(uuid.UUID(bytes=digest[:16], version=4))
    stamp = (query or {}).get("timestamp", "")
    epoch_ms = int(stamp) * 1000 if stamp.isdigit() else 0
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()}
        if query
        else None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "wechat-intake",
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{DEFAULT_STAGE}{path}",
            "stage": DEFAULT_STAGE,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": "",
            "requestTimeEpoch": epoch_ms,
            "protocol": "HTTP/1.1",
            "domainName": headers.get("Host", DEFAULT_HOST),
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
                "accessKey": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
            },
        },
        "body": wire_body,
        "isBase64Encoded": bool(base64_body),
    }
