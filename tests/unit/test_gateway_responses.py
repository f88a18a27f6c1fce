"""API Gateway's own error responses use the staff API's error shape and the Chinese of texts.zh-CN.toml."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.template import load_template
from intake import texts

GATEWAY_RESPONSES: dict[str, Any] = load_template()["Resources"]["IntakeApi"]["Properties"][
    "GatewayResponses"
]
# The refusals a staff client meets before any function runs: unsigned, badly signed or denied
# requests, throttling, oversized bodies, and any other error API Gateway returns by itself.
REQUIRED = (
    "ACCESS_DENIED",
    "MISSING_AUTHENTICATION_TOKEN",
    "INVALID_SIGNATURE",
    "EXPIRED_TOKEN",
    "THROTTLED",
    "REQUEST_TOO_LARGE",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
)


def _body(response_type: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        GATEWAY_RESPONSES[response_type]["ResponseTemplates"]["application/json"]
    )
    return document


@pytest.mark.parametrize("response_type", REQUIRED)
def test_gateway_response_is_configured(response_type: str) -> None:
    # GIVEN the API's gateway responses in template.yaml

    # WHEN one that a staff client can meet is looked up
    configured = response_type in GATEWAY_RESPONSES

    # THEN it is set, so API Gateway does not return its English default
    assert configured


@pytest.mark.parametrize("response_type", sorted(GATEWAY_RESPONSES))
def test_gateway_response_message_is_the_catalogued_text(response_type: str) -> None:
    # GIVEN a gateway response body from template.yaml
    body = _body(response_type)

    # WHEN its code is looked up under [api_error] in the text catalogue
    catalogued = texts.text(f"api_error.{body['code']}")

    # THEN the template carries exactly that text, and nothing but the code and the message
    assert body["message"] == catalogued
    assert set(body) == {"code", "message"}
