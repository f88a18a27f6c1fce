"""The fault proxy forwards to moto and responds with AWS's own error shapes at the planned rates."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.fault_proxy import FaultPlan, FaultProxy, request_service
from devstack.moto_server import LOCAL_REGION, MotoServer

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
TABLE = "fault-proxy-test"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with MotoServer() as server:
        client = boto3.client("dynamodb", endpoint_url=server.url, region_name=LOCAL_REGION,
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield server.url


def _client(service: str, url: str) -> object:
    return boto3.client(service, endpoint_url=url, region_name=LOCAL_REGION, config=NO_RETRIES,
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def _error(call: object) -> dict[str, object]:
    with pytest.raises(ClientError) as raised:
        call()  # type: ignore[operator]
    return {"code": raised.value.response["Error"]["Code"],
            "status": raised.value.response["ResponseMetadata"]["HTTPStatusCode"]}  # fmt: skip


def test_request_service_reads_the_credential_scope() -> None:
    # GIVEN a SigV4 header and a presigned URL
    header = (
        "AWS4-HMAC-SHA256 Credential=testing/20261204/us-east-1/dynamodb/aws4_request, SignedHeaders=host"
    )
    url = "/bucket/key?X-Amz-Credential=testing%2F20261204%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x"

    # WHEN the service is read
    services = (request_service(header, "/"), request_service(None, url), request_service(None, "/"))

    # THEN it is the signing name, or None for an unsigned request
    assert services == ("dynamodb", "s3", None)


def test_fault_proxy_forwards_when_no_fault_is_planned(moto_url: str) -> None:
    # GIVEN a proxy with no faults
    with FaultProxy(moto_url, FaultPlan(rates={})) as proxy:
        # WHEN a client lists tables through it
        tables = _client("dynamodb", proxy.url).list_tables()["TableNames"]  # type: ignore[attr-defined]

        # THEN moto responds, and the request was counted but not faulted
        assert TABLE in tables
        assert proxy.ledger.forwarded["dynamodb"] == 1
        assert proxy.ledger.summary() == {}


def test_fault_proxy_throttles_dynamodb_like_aws(moto_url: str) -> None:
    # GIVEN a proxy that throttles every DynamoDB request
    with FaultProxy(moto_url, FaultPlan(rates={"dynamodb": 1.0}, kinds=("throttle",))) as proxy:
        # WHEN a client writes through it
        error = _error(lambda: _client("dynamodb", proxy.url).put_item(  # type: ignore[attr-defined]
            TableName=TABLE, Item={"PK": {"S": "throttled"}}))  # fmt: skip

        # THEN the SDK gets DynamoDB's throttling error, and moto got nothing
        assert error == {"code": "ProvisionedThroughputExceededException", "status": 400}
        assert proxy.ledger.summary() == {"dynamodb": {"throttle": 1}}
    direct = _client("dynamodb", moto_url).get_item(TableName=TABLE, Key={"PK": {"S": "throttled"}})  # type: ignore[attr-defined]
    assert "Item" not in direct


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("throttle", {"code": "SlowDown", "status": 503}),
        ("server_error", {"code": "InternalError", "status": 500}),
    ],
)
def test_fault_proxy_fails_s3_like_aws(moto_url: str, kind: str, expected: dict[str, object]) -> None:
    # GIVEN a proxy that fails every S3 request with `kind`
    with FaultProxy(moto_url, FaultPlan(rates={"s3": 1.0}, kinds=(kind,))) as proxy:
        # WHEN a client lists buckets through it
        error = _error(lambda: _client("s3", proxy.url).list_buckets())  # type: ignore[attr-defined]

    # THEN the SDK gets S3's XML error
    assert error == expected


def test_fault_proxy_fails_sqs_with_an_internal_error(moto_url: str) -> None:
    # GIVEN a proxy that responds to every SQS request with a server error
    with FaultProxy(moto_url, FaultPlan(rates={"sqs": 1.0}, kinds=("server_error",))) as proxy:
        # WHEN a client lists queues through it
        error = _error(lambda: _client("sqs", proxy.url).list_queues())  # type: ignore[attr-defined]

    # THEN the SDK gets a 500
    assert error["status"] == 500


def test_fault_proxy_denies_only_the_planned_operation(moto_url: str) -> None:
    # GIVEN a proxy that denies TransactWriteItems and nothing else
    plan = FaultPlan(
        rates={"dynamodb": 1.0}, kinds=("access_denied",), operations=frozenset({"TransactWriteItems"})
    )
    with FaultProxy(moto_url, plan) as proxy:
        client = _client("dynamodb", proxy.url)

        # WHEN a client lists tables, then writes in a transaction
        tables = client.list_tables()["TableNames"]  # type: ignore[attr-defined]
        error = _error(lambda: client.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[{"Put": {"TableName": TABLE, "Item": {"PK": {"S": "denied"}}}}]))  # fmt: skip

    # THEN only the transaction is denied, with an error the SDK does not retry
    assert TABLE in tables
    assert error == {"code": "AccessDeniedException", "status": 400}


def test_fault_proxy_slow_request_still_reaches_moto(moto_url: str) -> None:
    # GIVEN a proxy that delays every DynamoDB request by 0.2 s
    plan = FaultPlan(rates={"dynamodb": 1.0}, kinds=("slow",), slow_seconds=0.2)
    with FaultProxy(moto_url, plan) as proxy:
        # WHEN a client writes through it
        _client("dynamodb", proxy.url).put_item(TableName=TABLE, Item={"PK": {"S": "slow"}})  # type: ignore[attr-defined]

        # THEN the write arrived and the delay was counted
        assert proxy.ledger.summary() == {"dynamodb": {"slow": 1}}
    direct = _client("dynamodb", moto_url).get_item(TableName=TABLE, Key={"PK": {"S": "slow"}})  # type: ignore[attr-defined]
    assert direct["Item"]["PK"] == {"S": "slow"}


def test_fault_proxy_switched_off_forwards_everything(moto_url: str) -> None:
    # GIVEN a proxy planned to fail every DynamoDB request, switched off
    with FaultProxy(moto_url, FaultPlan(rates={"dynamodb": 1.0})) as proxy:
        proxy.ledger.enabled = False

        # WHEN a client lists tables through it
        tables = _client("dynamodb", proxy.url).list_tables()["TableNames"]  # type: ignore[attr-defined]

    # THEN nothing fails
    assert TABLE in tables
