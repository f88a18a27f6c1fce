"""The resources an ops command works on: a deployed stack's outputs, or the same names on the local stack.

A deployed stack is read through CloudFormation `DescribeStacks` (`--stack-name`). The local stack
(`--endpoint-url`, moto's server started by `make local`) has no CloudFormation stack, so its outputs
are rebuilt from template.yaml's `Outputs` and the names that `devstack.resources` gives resources:
`{stack_name}-{LogicalId}` (plus `.fifo` for FIFO queues), and the template's own `Name` where it sets one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devstack.template import Resolver, load_template, parameter_values

logger = logging.getLogger(__name__)

LOCAL_STACK_NAME = "wechat-intake-local"


class StackOutputError(Exception):
    """The stack or one of its outputs was not found."""


@dataclass
class StackTarget:
    """A boto3 session bound to one stack, with the stack's outputs by key."""

    session: boto3.session.Session
    stack_name: str
    outputs: dict[str, str]
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def output(self, key: str) -> str:
        """Return the output `key`; raises StackOutputError naming the stack when it is missing."""
        value = self.outputs.get(key)
        if not value:
            raise StackOutputError(
                f"stack {self.stack_name} has no output {key}; deploy the current template.yaml first"
            )
        return value

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def resource(self, service: str) -> Any:
        return self.session.resource(service, endpoint_url=self.endpoint_url)


def from_cloudformation(session: boto3.session.Session, stack_name: str) -> StackTarget:
    """Read the outputs of the deployed stack `stack_name`."""
    cloudformation = session.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as err:
        raise StackOutputError(
            f"stack {stack_name} not found in {session.region_name}; check --stack-name and --region"
        ) from err
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    logger.info("read %d outputs of stack %s", len(outputs), stack_name)
    return StackTarget(session=session, stack_name=stack_name, outputs=outputs)


def _local_physical_id(
    target: StackTarget, resolver: Resolver, logical_id: str, resource: dict[str, Any]
) -> dict[str, str]:
    """Return Ref and the attributes the outputs use for one resource that the local stack created."""
    kind = resource["Type"]
    props = resource.get("Properties", {})
    name = f"{target.stack_name}-{logical_id}"
    if kind == "AWS::SQS::Queue":
        queue_name = name + (".fifo" if props.get("FifoQueue") else "")
        url = target.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
        return {"Ref": url, "QueueName": queue_name}
    if kind == "AWS::DynamoDB::Table":
        return {"Ref": name}
    if kind == "AWS::SecretsManager::Secret":
        arn = target.client("secretsmanager").describe_secret(SecretId=name)["ARN"]
        return {"Ref": arn}
    if kind == "AWS::Events::EventBus":
        return {"Ref": str(resolver.resolve(props.get("Name", name)))}
    if kind == "AWS::KMS::Key":
        # The local stack's keys have random ids; each is found by the template's description.
        kms = target.client("kms")
        for key in kms.list_keys()["Keys"]:
            metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if metadata.get("Description") == props.get("Description", logical_id):
                return {"Ref": metadata["KeyId"], "Arn": metadata["Arn"]}
    raise StackOutputError(f"resource {logical_id} ({kind}) not found on the local stack")


def from_local_stack(
    session: boto3.session.Session, endpoint_url: str, stack_name: str = LOCAL_STACK_NAME
) -> StackTarget:
    """Rebuild the template's outputs on the local stack behind `endpoint_url`.

    Outputs that refer to a resource the local stack does not emulate (alarms, the API) are left out.
    """
    target = StackTarget(session=session, stack_name=stack_name, outputs={}, endpoint_url=endpoint_url)
    template = load_template()
    resources = template["Resources"]
    resolver = Resolver(
        parameters=parameter_values(template),
        resources={},
        stack_name=stack_name,
        region=session.region_name or "us-east-1",
        conditions=template.get("Conditions", {}),
    )
    for key, output in template.get("Outputs", {}).items():
        value = output["Value"]
        if "Ref" in value:
            logical_id, attribute = value["Ref"], "Ref"
        elif "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
        else:
            continue
        resource = resources.get(logical_id)
        if resource is None or "Condition" in resource:
            continue
        try:
            physical = _local_physical_id(target, resolver, logical_id, resource)
        except (StackOutputError, ClientError):
            continue
        if attribute in physical:
            target.outputs[key] = physical[attribute]
    logger.info("found %d outputs of the local stack %s", len(target.outputs), stack_name)
    return target
