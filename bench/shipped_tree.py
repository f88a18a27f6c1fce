"""The functions and layers laid out as Lambda unpacks them, built by the same Makefiles `sam build` runs.

`sam build` installs arm64 wheels, which this machine may not be able to import, so the layers are
built again here with each layer's Makefile and `PLATFORM` set to this machine's architecture: the
same recipe, including the checked-hash `.pyc` files. Every file then gets the timestamp that a SAM
zip carries (1980-01-01), as Lambda's unpacking leaves it. A second copy without any `__pycache__`
folder stands for the package as SAM built it before the layers were precompiled.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.template import ROOT

# 1980-01-01 00:00 UTC, the earliest time a zip entry can hold and the one SAM's zips carry.
ZIP_EPOCH = 315532800

_WHEEL_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}


@dataclass(frozen=True)
class ShippedTree:
    """Locations of each function's code and each layer's `python` folder, keyed by their source folders."""

    code: dict[Path, Path]
    layers: dict[Path, Path]

    def paths(self, code_uri: Path, layer_uris: list[Path]) -> list[Path]:
        """Return sys.path entries in Lambda's order: the function's code, then each layer."""
        return [self.code[code_uri.resolve()], *(self.layers[uri.resolve()] for uri in layer_uris)]


def _layer_resources(template: dict[str, Any]) -> dict[str, Path]:
    return {
        logical_id: (ROOT / resource["Properties"]["ContentUri"]).resolve()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }


def _build_layer(logical_id: str, source: Path, destination: Path) -> Path:
    """Run the layer's Makefile target in a copy of its folder, as `sam build` does, for this machine."""
    scratch = destination / "scratch" / logical_id
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    artifacts = destination / "layers" / logical_id
    wheel_platform = _WHEEL_PLATFORMS.get(platform.machine(), "manylinux2014_x86_64")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            f"build-{logical_id}",
            f"ARTIFACTS_DIR={artifacts}",
            f"PLATFORM={wheel_platform}",
            f"PYTHON={sys.executable}",
        ],
        cwd=scratch,
        check=True,
        timeout=1800,
    )
    return artifacts / "python"


def _stamp_zip_epoch(directory: Path) -> None:
    for root, _, files in os.walk(directory):
        for name in files:
            os.utime(Path(root) / name, (ZIP_EPOCH, ZIP_EPOCH))


def _without_bytecode(source: Path, destination: Path) -> None:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
    _stamp_zip_epoch(destination)


def build_shipped_trees(
    template: dict[str, Any], code_uris: list[Path], destination: Path
) -> tuple[ShippedTree, ShippedTree]:
    """Return the tree as shipped (precompiled) and the same tree without any `.pyc` file."""
    layers = {
        source: _build_layer(logical_id, source, destination)
        for logical_id, source in _layer_resources(template).items()
    }
    code = {}
    for uri in code_uris:
        copy = destination / "code" / uri.name
        shutil.copytree(uri, copy, ignore=shutil.ignore_patterns("__pycache__"))
        code[uri.resolve()] = copy
    _stamp_zip_epoch(destination / "layers")
    _stamp_zip_epoch(destination / "code")
    shipped = ShippedTree(code=code, layers=layers)

    bare_root = destination / "without-pyc"
    bare_layers = {}
    for source, path in layers.items():
        bare = bare_root / "layers" / path.parent.name
        _without_bytecode(path, bare)
        bare_layers[source] = bare
    bare_code = {}
    for uri, path in code.items():
        bare = bare_root / "code" / path.name
        _without_bytecode(path, bare)
        bare_code[uri] = bare
    return shipped, ShippedTree(code=bare_code, layers=bare_layers)
