"""Access to the Simplified Chinese texts in texts.zh-CN.toml, the one place where they are edited."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

TEXTS_FILE = Path(__file__).with_name("texts.zh-CN.toml")


@cache
def _catalogue() -> dict[str, Any]:
    with TEXTS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def lookup(key: str) -> Any:
    """Return the raw entry at a dotted key such as `citizen.welcome`; raises KeyError when absent."""
    node: Any = _catalogue()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"no text {key!r} in {TEXTS_FILE.name}")
        node = node[part]
    return node


def text(key: str, **params: object) -> str:
    """Return the text at `key` with its placeholders filled from `params`."""
    template = lookup(key)
    if not isinstance(template, str):
        raise KeyError(f"text {key!r} in {TEXTS_FILE.name} is not a string")
    return template.format(**params)


def status_label(status: str) -> str:
    """Return the Chinese label of a ticket status, or the status itself when it has none."""
    labels: dict[str, str] = lookup("status")
    return labels.get(status, status)
