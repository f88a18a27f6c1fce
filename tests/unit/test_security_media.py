"""Citizen media is reachable only through presigned URLs that expire.

The template check reads template.yaml. The route check calls every GET route of the staff API
through the real handler on moto, around a ticket whose photo is stored, and inspects every string
in every response for a link into the media bucket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devstack.resources import Stack
from devstack.template import load_template
from intake import clock
from intake.keys import TICKET_SK, ticket_pk
from intake.media_storage import MAX_PRESIGNED_SECONDS, presigned_media_url
from tests.conftest import FakeLambdaContext
from tests.unit.staff_api_events import rest_event, ticket_item

TICKET_ID = "DG20241204-0002"
S3_KEY = f"media/2024/12/04/{TICKET_ID}/24877465529999003.jpg"
STAFF_S3_KEY = f"media/2024/12/04/{TICKET_ID}/24877465529999003.clean.jpg"
NOW = 1733300060


def test_media_bucket_is_private_and_tls_only() -> None:
    # GIVEN the media bucket and its policy in template.yaml
    resources = load_template()["Resources"]
    bucket = resources["MediaBucket"]["Properties"]
    policies = [
        resource["Properties"]["PolicyDocument"]["Statement"]
        for resource in resources.values()
        if resource["Type"] == "AWS::S3::BucketPolicy"
        and resource["Properties"]["Bucket"] == {"Ref": "MediaBucket"}
    ]

    # WHEN its public access settings and policy statements are read
    block = bucket["PublicAccessBlockConfiguration"]
    denies_plain_http = [
        statement
        for statements in policies
        for statement in statements
        if statement["Effect"] == "Deny"
        and statement["Principal"] == "*"
        and statement["Action"] in ("s3:*", ["s3:*"])
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]

    # THEN every public access path is blocked, requests without TLS are denied, and objects are KMS-encrypted
    assert block == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert len(denies_plain_http) == 1
    assert len(denies_plain_http[0]["Resource"]) == 2
    encryption = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"


@pytest.mark.parametrize("seconds", [0, -1, MAX_PRESIGNED_SECONDS + 1, 7 * 86400])
def test_presigned_url_lifetime_is_capped(seconds: int) -> None:
    # GIVEN a lifetime outside 1 second to one hour

    # WHEN a media URL is requested for it
    # THEN it is refused before anything is signed
    with pytest.raises(ValueError, match="expires_in"):
        presigned_media_url(S3_KEY, seconds, s3_client=object(), bucket="bucket")


@pytest.fixture
def staff_api(
    stack: Stack, load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    monkeypatch.setattr(clock, "now", lambda: float(NOW))
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    table.put_item(
        Item=ticket_item(
            TICKET_ID,
            "closed",
            created_at=float(NOW - 3600),
            appeal_type="complaint",
            category="noise",
            accepted_at=clock.iso_utc(NOW - 3000),
            closed_at=clock.iso_utc(NOW - 60),
        )
    )
    table.put_item(
        Item={
            "PK": ticket_pk(TICKET_ID),
            "SK": "MSG#1733296460#0123456789abcdef",
            "item_type": "message",
            "msg_type": "image",
            "msg_id": "24877465529999003",
            "created_at": clock.iso_utc(NOW - 3600),
            "media": {
                "status": "stored",
                "s3_key": S3_KEY,
                "staff_s3_key": STAFF_S3_KEY,
                "content_type": "image/jpeg",
                "size": 12,
            },
        }
    )
    for key in (S3_KEY, STAFF_S3_KEY):
        stack.client("s3").put_object(Bucket=stack.ref("MediaBucket"), Key=key, Body=b"\xff\xd8\xff\xe0photo")
    assert table.get_item(Key={"PK": ticket_pk(TICKET_ID), "SK": TICKET_SK})["Item"]
    return load_function("StaffApiFunction")


def strings(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings(value)


GET_ROUTES = [
    ("/tickets", "/tickets", None),
    (f"/tickets/{TICKET_ID}", "/tickets/{ticket_id}", {"ticket_id": TICKET_ID}),
    (f"/tickets/{TICKET_ID}/similar", "/tickets/{ticket_id}/similar", {"ticket_id": TICKET_ID}),
    ("/stats", "/stats", None),
    ("/open311/v2/requests.json", "/open311/v2/{proxy+}", {"proxy": "requests.json"}),
    (
        f"/open311/v2/requests/{TICKET_ID}.json",
        "/open311/v2/{proxy+}",
        {"proxy": f"requests/{TICKET_ID}.json"},
    ),
]


def test_staff_routes_return_only_presigned_media_urls(stack: Stack, staff_api: ModuleType) -> None:
    # GIVEN a ticket with a stored photo, and the staff API's GET routes
    bucket = stack.ref("MediaBucket")

    # WHEN each route is called
    bodies = []
    for path, resource, parameters in GET_ROUTES:
        response = staff_api.lambda_handler(
            rest_event("GET", path, resource, parameters), FakeLambdaContext()
        )
        assert response["statusCode"] == 200, (path, response["body"])
        bodies.append(json.loads(response["body"]))

    # THEN every link into the media bucket is presigned with SigV4 for at most 5 minutes
    links = [text for body in bodies for text in strings(body) if bucket in text or "amazonaws.com" in text]
    assert links, "the ticket view links the stored photo"
    for link in links:
        query = parse_qs(urlsplit(link).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Signature"][0]
        assert int(query["X-Amz-Expires"][0]) == 300
        signed_at = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
        assert abs(signed_at - time.time()) < 600
    # AND the staff copy without EXIF is linked, never the original
    assert not any(urlsplit(link).path.endswith(S3_KEY) for link in links)
    # AND no media key appears as a bare URL
    assert not any(
        text.startswith(("http://", "https://")) and "X-Amz-Signature" not in text for text in links
    )
