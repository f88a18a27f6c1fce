"""Helpers of the ops CLI tests: the stack fixture's resources as a deployed stack with outputs."""

from __future__ import annotations

import json

from devstack.ops.stack_outputs import StackTarget, from_local_stack
from devstack.resources import Stack

DEPLOYED_STACK_NAME = "wechat-intake-test"


def local_target(stack: Stack) -> StackTarget:
    """Return the outputs of the stack fixture, found by name as on the local stack."""
    return from_local_stack(stack.session, endpoint_url=None, stack_name=stack.resolver.stack_name)


def deploy_outputs(stack: Stack) -> str:
    """Create a CloudFormation stack in moto whose outputs are the stack fixture's; return its name.

    `--stack-name` then reads the outputs through DescribeStacks, as against a deployed stack.
    """
    cloudformation = stack.client("cloudformation")
    if any(
        summary["StackName"] == DEPLOYED_STACK_NAME
        for summary in cloudformation.list_stacks()["StackSummaries"]
    ):
        return DEPLOYED_STACK_NAME
    outputs = {key: {"Value": value} for key, value in local_target(stack).outputs.items()}
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": outputs,
    }
    cloudformation.create_stack(StackName=DEPLOYED_STACK_NAME, TemplateBody=json.dumps(template))
    return DEPLOYED_STACK_NAME
