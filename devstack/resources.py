"""Create template.yaml's queues, tables, bucket, keys, secrets, bus and rules on (emulated) AWS.

Used by the local stack against moto's server and by the tests inside `moto.mock_aws`. Each
resource gets the attributes the template gives it (FIFO, deduplication scope, redrive to its DLQ,
TTL, GSIs, encryption, point-in-time recovery).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from devstack.template import (
    Physical,
    Resolver,
    UnresolvedReferenceError,
    load_template,
    parameter_values,
)

# Resource types that exist only in the cloud; locally they are stand-ins (functions run in-process).
_NOT_EMULATED = {
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::Function",
    "AWS::Serverless::Api",
    "AWS::Logs::LogGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::NatGateway",
    "AWS::EC2::EIP",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::SecurityGroup",
}

# Template property -> SQS attribute name.
_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "ContentBasedDeduplication",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
)


def _attribute_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Stack:
    """The created resources by logical id, plus what the functions need to reach them."""

    template: dict[str, Any]
    resolver: Resolver
    session: boto3.session.Session
    endpoint_url: str | None = None
    created: list[str] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def resources(self) -> dict[str, Physical]:
        return self.resolver.resources

    def ref(self, logical_id: str) -> str:
        return self.resources[logical_id].ref

    def attribute(self, logical_id: str, name: str) -> str:
        return self.resources[logical_id].attributes[name]

    def client(self, service: str) -> Any:
        """Return this stack's boto3 client for `service`, created once (a client costs tens of ms)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def queues(self) -> dict[str, str]:
        """Return queue URL by logical id for every queue in the template."""
        return {
            logical_id: self.ref(logical_id)
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::SQS::Queue"
        }


class _Creator:
    def __init__(self, stack: Stack, secret_values: dict[str, str]) -> None:
        self.stack = stack
        self.secret_values = secret_values
        self.name_prefix = stack.resolver.stack_name

    def physical_name(self, logical_id: str) -> str:
        return f"{self.name_prefix}-{logical_id}"

    # -- one method per resource type ----------------------------------------------------------------

    def kms_key(self, logical_id: str, props: dict[str, Any]) -> Physical:
        kms = self.stack.client("kms")
        key = kms.create_key(Description=props.get("Description", logical_id))["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        return Physical(ref=key["KeyId"], attributes={"Arn": key["Arn"], "KeyId": key["KeyId"]})

    def secret(self, logical_id: str, props: dict[str, Any]) -> Physical:
        client = self.stack.client("secretsmanager")
        if logical_id in self.secret_values:
            value = self.secret_values[logical_id]
        elif "SecretString" in props:
            value = props["SecretString"]
        else:
            generate = props.get("GenerateSecretString", {})
            generated = secrets.token_urlsafe(int(generate.get("PasswordLength", 32)))
            if "SecretStringTemplate" in generate:
                document = json.loads(generate["SecretStringTemplate"])
                document[generate["GenerateStringKey"]] = generated
                value = json.dumps(document)
            else:
                value = generated
        arn = client.create_secret(Name=self.physical_name(logical_id), SecretString=value)["ARN"]
        return Physical(ref=arn, attributes={"Id": arn})

    def table(self, logical_id: str, props: dict[str, Any]) -> Physical:
        dynamodb = self.stack.client("dynamodb")
        name = props.get("TableName") or self.physical_name(logical_id)
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if props.get("GlobalSecondaryIndexes"):
            arguments["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("SSESpecification"):
            arguments["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
        description = dynamodb.create_table(**arguments)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
        return Physical(ref=name, attributes={"Arn": description["TableArn"]})

    def queue(self, logical_id: str, props: dict[str, Any]) -> Physical:
        sqs = self.stack.client("sqs")
        fifo = bool(props.get("FifoQueue"))
        name = props.get("QueueName") or self.physical_name(logical_id) + (".fifo" if fifo else "")
        attributes = {key: _attribute_string(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})

    def queue_policy(self, logical_id: str, props: dict[str, Any]) -> Physical:
        sqs = self.stack.client("sqs")
        for url in props["Queues"]:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
        return Physical(ref=self.physical_name(logical_id))

    def bucket(self, logical_id: str, props: dict[str, Any]) -> Physical:
        s3 = self.stack.client("s3")
        name = (props.get("BucketName") or self.physical_name(logical_id)).lower()
        region = self.stack.resolver.region
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
        if encryption:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": dict(rule["ServerSideEncryptionByDefault"]),
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in encryption
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if props.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        partition = "aws"
        return Physical(
            ref=name,
            attributes={"Arn": f"arn:{partition}:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"},
        )

    def bucket_policy(self, logical_id: str, props: dict[str, Any]) -> Physical:
        # The emulated endpoints use plain HTTP on loopback, so a statement that denies requests without
        # TLS (aws:SecureTransport false) would deny every local request. It is left out here and
        # applies only in the cloud.
        document = dict(props["PolicyDocument"])
        document["Statement"] = [
            statement
            for statement in document.get("Statement", [])
            if "aws:SecureTransport" not in statement.get("Condition", {}).get("Bool", {})
        ]
        if document["Statement"]:
            self.stack.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
        return Physical(ref=self.physical_name(logical_id))

    def event_bus(self, logical_id: str, props: dict[str, Any]) -> Physical:
        events = self.stack.client("events")
        name = props.get("Name") or self.physical_name(logical_id)
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        return Physical(ref=name, attributes={"Arn": arn, "Name": name})

    def rule(self, logical_id: str, props: dict[str, Any]) -> Physical:
        events = self.stack.client("events")
        name = props.get("Name") or self.physical_name(logical_id)
        arguments: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
        if props.get("EventBusName"):
            arguments["EventBusName"] = props["EventBusName"]
        if props.get("EventPattern"):
            arguments["EventPattern"] = json.dumps(props["EventPattern"])
        if props.get("ScheduleExpression"):
            arguments["ScheduleExpression"] = props["ScheduleExpression"]
        arn = events.put_rule(**arguments)["RuleArn"]
        targets = [{"Id": target["Id"], "Arn": target["Arn"]} for target in props.get("Targets", [])]
        if targets:
            target_arguments: dict[str, Any] = {"Rule": name, "Targets": targets}
            if props.get("EventBusName"):
                target_arguments["EventBusName"] = props["EventBusName"]
            events.put_targets(**target_arguments)
        return Physical(ref=name, attributes={"Arn": arn})

    def stand_in(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = props.get("FunctionName") or self.physical_name(logical_id)
        account = self.stack.resolver.account_id
        arn = f"arn:aws:lambda:{self.stack.resolver.region}:{account}:function:{name}"
        return Physical(ref=name, attributes={"Arn": arn, "RootResourceId": "local"})


def _handlers(creator: _Creator) -> dict[str, Callable[[str, dict[str, Any]], Physical]]:
    return {
        "AWS::KMS::Key": creator.kms_key,
        "AWS::SecretsManager::Secret": creator.secret,
        "AWS::DynamoDB::Table": creator.table,
        "AWS::SQS::Queue": creator.queue,
        "AWS::SQS::QueuePolicy": creator.queue_policy,
        "AWS::S3::Bucket": creator.bucket,
        "AWS::S3::BucketPolicy": creator.bucket_policy,
        "AWS::Events::EventBus": creator.event_bus,
        "AWS::Events::Rule": creator.rule,
    }


def create_stack(
    session: boto3.session.Session,
    endpoint_url: str | None = None,
    parameter_overrides: dict[str, str] | None = None,
    secret_values: dict[str, str] | None = None,
    template: dict[str, Any] | None = None,
    stack_name: str = "wechat-intake-local",
) -> Stack:
    """Create every emulated resource of the template, in dependency order, and return them.

    `secret_values` sets a secret's SecretString by logical id (the local stack puts the WeChat
    credentials from its environment there). Resources whose type has no local emulation resolve to
    stand-in names so that references to them still work.
    """
    template = template or load_template()
    resolver = Resolver(
        parameters=parameter_values(template, parameter_overrides),
        resources={},
        stack_name=stack_name,
        region=session.region_name or "us-east-1",
        conditions=template.get("Conditions", {}),
    )
    stack = Stack(template=template, resolver=resolver, session=session, endpoint_url=endpoint_url)
    creator = _Creator(stack, secret_values or {})
    handlers = _handlers(creator)

    # As in CloudFormation, a resource whose Condition is false is not created.
    pending = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if "Condition" not in resource or resolver.condition(resource["Condition"])
    }
    while pending:
        progressed = False
        for logical_id, resource in list(pending.items()):
            try:
                props = resolver.resolve(resource.get("Properties", {}))
            except UnresolvedReferenceError:
                continue
            kind = resource["Type"]
            if kind in handlers:
                physical = handlers[kind](logical_id, props)
            elif kind in _NOT_EMULATED:
                physical = creator.stand_in(logical_id, props)
            else:
                raise NotImplementedError(f"the local stack cannot emulate {kind} ({logical_id})")
            resolver.resources[logical_id] = physical
            stack.created.append(logical_id)
            del pending[logical_id]
            progressed = True
        if not progressed:
            raise UnresolvedReferenceError(f"circular or missing references among {sorted(pending)}")
    return stack
