"""Read template.yaml: CloudFormation short-form tags, SAM Globals and intrinsic functions.

The local stack and the tests take every queue, table, bucket, bus and function from here, so the
template stays the only list of resources.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"


# libyaml's loader parses template.yaml about ten times faster than the pure-Python one.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """YAML loader that turns `!Ref x` and friends into their long forms (`{"Ref": "x"}`)."""


def _tag_constructor(tag: str):  # type: ignore[no-untyped-def]
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _tag in ("Ref", "GetAtt", "Sub", "If", "Equals", "Join", "Select", "Split", "Not", "And", "Or", "Base64"):
    _CfnLoader.add_constructor(f"!{_tag}", _tag_constructor(_tag))


@functools.cache
def _parsed_template(path: Path, modified_ns: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return document


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Return the parsed template; a fresh copy each call, parsed again only when the file changed."""
    return copy.deepcopy(_parsed_template(path.resolve(), path.stat().st_mtime_ns))


@dataclass
class Physical:
    """The values that Ref and GetAtt return for one created resource."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class UnresolvedReferenceError(KeyError):
    """A Ref or GetAtt names a resource that has not been created (yet)."""


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameters and already-created resources."""

    parameters: dict[str, str]
    resources: dict[str, Physical]
    stack_name: str = "wechat-intake-local"
    region: str = LOCAL_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    conditions: dict[str, Any] = field(default_factory=dict)

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }

    def ref(self, name: str) -> str:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resources[name].ref
        raise UnresolvedReferenceError(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            raise UnresolvedReferenceError(logical_id)
        try:
            return self.resources[logical_id].attributes[attribute]
        except KeyError as err:
            raise UnresolvedReferenceError(f"{logical_id}.{attribute}") from err

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                return self.get_att(argument[0], argument[1])
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if key == "Fn::Join":
                return argument[0].join(str(self.resolve(item)) for item in argument[1])
            if key == "Fn::Select":
                return self.resolve(argument[1])[int(argument[0])]
            if key == "Fn::Split":
                return str(self.resolve(argument[1])).split(argument[0])
            if key == "Condition":
                return self.condition(argument)
        return {key: self.resolve(item) for key, item in value.items()}


def parameter_values(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Return every template parameter's value: the override when given, else the default."""
    values: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            values[name] = str(spec["Default"])
    for name, value in (overrides or {}).items():
        if name not in template.get("Parameters", {}):
            raise KeyError(f"template.yaml has no parameter {name!r}")
        values[name] = str(value)
    return values


@dataclass
class FunctionSpec:
    """One AWS::Serverless::Function with SAM Globals merged in and its environment resolved."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    layers: list[Path]
    events: dict[str, dict[str, Any]]

    @property
    def module_name(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def function_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def _layer_paths(template: dict[str, Any], layer_refs: list[Any]) -> list[Path]:
    paths = []
    for layer in layer_refs:
        if isinstance(layer, dict) and "Ref" in layer:
            resource = template["Resources"][layer["Ref"]]
            paths.append(ROOT / resource["Properties"]["ContentUri"])
    return paths


def function_specs(template: dict[str, Any], resolver: Resolver) -> list[FunctionSpec]:
    """Return every function in the template as the Lambda service would configure it."""
    globals_ = template.get("Globals", {}).get("Function", {})
    specs = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        environment = dict(globals_.get("Environment", {}).get("Variables", {}))
        environment.update(props.get("Environment", {}).get("Variables", {}))
        layers = list(globals_.get("Layers", [])) + list(props.get("Layers", []))
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                code_uri=ROOT / props["CodeUri"],
                handler=props["Handler"],
                timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                memory_size=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                environment={key: str(resolver.resolve(value)) for key, value in environment.items()},
                layers=_layer_paths(template, layers),
                events={name: resolver.resolve(event) for name, event in props.get("Events", {}).items()},
            )
        )
    return specs


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
