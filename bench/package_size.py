"""Deployment package size of each function with its layers, as `sam build` (without Docker) makes them."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.template import ROOT

BUILD_DIR = ROOT / ".aws-sam" / "build"


@dataclass(frozen=True)
class PackageSize:
    """Bytes of one function's code plus its layers, unzipped and zipped (Lambda's limit is 250 MB unzipped)."""

    function: str
    unzipped_bytes: int
    zipped_bytes: int


def _files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


def _zipped_size(directories: list[Path]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for directory in directories:
            for path in _files(directory):
                archive.write(path, path.relative_to(directory))
    return buffer.tell()


def run_sam_build() -> None:
    # sam build looks for `python3.13` on PATH; the project's virtualenv has one.
    path = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": path}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "sam"), "build", "--template", str(ROOT / "template.yaml")],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=1800,
    )


def measure_package_sizes(template: dict[str, Any]) -> list[PackageSize]:
    """Build with `sam build` and return the size of each function with its layers."""
    run_sam_build()
    globals_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    sizes = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        layers = globals_layers + resource["Properties"].get("Layers", [])
        directories = [BUILD_DIR / logical_id] + [BUILD_DIR / layer["Ref"] for layer in layers]
        unzipped = sum(path.stat().st_size for directory in directories for path in _files(directory))
        sizes.append(PackageSize(logical_id, unzipped, _zipped_size(directories)))
    return sizes
