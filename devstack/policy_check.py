"""Security policy check of template.yaml, run in CI: `python -m devstack.policy_check template.yaml`.

It exits 1 on any of these: an Allow statement with a wildcard action or resource; a bucket that is
public or not KMS-encrypted; a table without encryption or point-in-time recovery; a queue without
encryption; a work queue without a dead-letter queue; a log group without retention; an SNS topic
without a KMS key; a CloudWatch alarm without an alarm action. An API route other than the WeChat
callback that skips AWS_IAM authorization fails it too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack.template import load_template

# Only the WeChat callback may be called without AWS credentials; its requests are signature-checked.
UNAUTHENTICATED_PATHS = frozenset({"/wechat"})


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_wildcard(value: Any) -> bool:
    """Return True for `*`, an action such as `s3:*`, or an ARN that ends in `:*`.

    Object and index paths such as `arn:aws:s3:::bucket/*` are scoped to one resource and pass.
    """
    return isinstance(value, str) and (value == "*" or value.endswith(":*"))


def _allow_statements(policy_document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for statement in _as_list(policy_document.get("Statement", [])):
        if statement.get("Effect") == "Allow":
            yield statement


def _function_statements(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the inline Allow statements of a SAM function's Policies (SAM policy templates are scoped)."""
    for policy in _as_list(props.get("Policies", [])):
        if isinstance(policy, dict) and "Statement" in policy:
            yield from _allow_statements(policy)


def _dead_letter_queue_ids(resources: dict[str, Any]) -> set[str]:
    targets = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        redrive = resource.get("Properties", {}).get("RedrivePolicy", {})
        target = redrive.get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            targets.add(target["Fn::GetAtt"][0])
    return targets


def _check_iam(logical_id: str, statements: Iterator[dict[str, Any]]) -> Iterator[str]:
    for statement in statements:
        for action in _as_list(statement.get("Action", [])):
            if _is_wildcard(action):
                yield f"{logical_id}: IAM statement allows wildcard action {action!r}"
        for resource in _as_list(statement.get("Resource", [])):
            if _is_wildcard(resource):
                yield f"{logical_id}: IAM statement allows wildcard resource {resource!r}"


def _check_bucket(logical_id: str, props: dict[str, Any]) -> Iterator[str]:
    rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    algorithms = {rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules}
    if not algorithms & {"aws:kms", "aws:kms:dsse"}:
        yield f"{logical_id}: bucket is not encrypted with KMS (BucketEncryption)"
    block = props.get("PublicAccessBlockConfiguration", {})
    for setting in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if block.get(setting) is not True:
            yield f"{logical_id}: bucket does not set PublicAccessBlockConfiguration.{setting}: true"
    if props.get("AccessControl") in {"PublicRead", "PublicReadWrite", "AuthenticatedRead"}:
        yield f"{logical_id}: bucket has a public AccessControl"


def _check_table(logical_id: str, props: dict[str, Any]) -> Iterator[str]:
    if props.get("SSESpecification", {}).get("SSEEnabled") is not True:
        yield f"{logical_id}: table does not set SSESpecification.SSEEnabled: true"
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
        yield f"{logical_id}: table does not enable point-in-time recovery"


def _check_queue(logical_id: str, props: dict[str, Any], dead_letter_ids: set[str]) -> Iterator[str]:
    if props.get("SqsManagedSseEnabled") is not True and not props.get("KmsMasterKeyId"):
        yield f"{logical_id}: queue is not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)"
    if logical_id not in dead_letter_ids and "RedrivePolicy" not in props:
        yield f"{logical_id}: queue has no dead-letter queue (RedrivePolicy)"


def _check_api_events(logical_id: str, props: dict[str, Any]) -> Iterator[str]:
    for name, event in props.get("Events", {}).items():
        if event.get("Type") != "Api":
            continue
        event_props = event.get("Properties", {})
        authorizer = event_props.get("Auth", {}).get("Authorizer")
        if authorizer == "NONE" and event_props.get("Path") not in UNAUTHENTICATED_PATHS:
            yield f"{logical_id}.{name}: route {event_props.get('Path')} skips AWS_IAM authorization"


def find_violations(template: dict[str, Any]) -> list[str]:
    """Return one message per violation; an empty list means the template passes."""
    resources: dict[str, Any] = template.get("Resources", {})
    dead_letter_ids = _dead_letter_queue_ids(resources)
    violations: list[str] = []
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        props = resource.get("Properties", {})
        if kind == "AWS::Serverless::Function":
            violations += _check_iam(logical_id, _function_statements(props))
            violations += _check_api_events(logical_id, props)
        elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            violations += _check_iam(logical_id, _allow_statements(props.get("PolicyDocument", {})))
        elif kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                violations += _check_iam(logical_id, _allow_statements(policy.get("PolicyDocument", {})))
        elif kind == "AWS::S3::Bucket":
            violations += _check_bucket(logical_id, props)
        elif kind == "AWS::DynamoDB::Table":
            violations += _check_table(logical_id, props)
        elif kind == "AWS::SQS::Queue":
            violations += _check_queue(logical_id, props, dead_letter_ids)
        elif kind == "AWS::Logs::LogGroup" and "RetentionInDays" not in props:
            violations.append(f"{logical_id}: log group has no RetentionInDays")
        elif kind == "AWS::SNS::Topic" and not props.get("KmsMasterKeyId"):
            violations.append(f"{logical_id}: topic is not encrypted (KmsMasterKeyId)")
        elif kind == "AWS::CloudWatch::Alarm" and not props.get("AlarmActions"):
            violations.append(f"{logical_id}: alarm notifies nobody (AlarmActions is empty)")
        elif kind == "AWS::Serverless::Api":
            default_auth = props.get("Auth", {}).get("DefaultAuthorizer")
            if default_auth != "AWS_IAM":
                violations.append(
                    f"{logical_id}: API DefaultAuthorizer is {default_auth!r}, expected AWS_IAM"
                )
    return violations


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path("template.yaml")
    violations = find_violations(load_template(path))
    for violation in violations:
        print(f"policy violation: {violation}", file=sys.stderr)
    if violations:
        print(f"{path}: {len(violations)} policy violation(s)", file=sys.stderr)
        return 1
    print(f"{path}: policy check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
