"""Cold-start import time of each handler module, in fresh interpreters, against a boto3 baseline.

Each sample starts a new Python process with the function's environment from template.yaml and its
code and layers on `sys.path` (as Lambda lays them out), then times only the import of the handler
module with `time.perf_counter`, so interpreter start-up is excluded from both the samples and the
baseline. The baseline is a bare module that imports boto3 and creates one SQS client.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.template import FunctionSpec

BASELINE_SOURCE = "import boto3\nboto3.client('sqs', region_name='us-east-1')\n"

# The child process: put the code paths first, time the import, print the seconds as JSON.
_TIMER = """
import json, sys, time, importlib.util
paths, module_file = json.loads(sys.argv[1]), sys.argv[2]
sys.path[:0] = paths
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler_under_test", module_file)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(time.perf_counter() - start))
"""


@dataclass(frozen=True)
class ImportSample:
    """Import times in seconds of one module over several fresh interpreters."""

    name: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.seconds), max(self.seconds)


def _child_environment(extra: dict[str, str], without_bytecode: bool) -> dict[str, str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # No network is reached at import time; this keeps any stray call on loopback.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        **extra,
    }
    if without_bytecode:
        # An empty, unwritable-in-practice cache prefix makes every import compile from source, which is
        # what Lambda does when the .pyc files in a zip do not match (SAM zips with 1980 timestamps).
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="bench-nopyc-")
    return environment


def time_import(
    module_file: Path,
    paths: list[Path],
    environment: dict[str, str],
    runs: int,
    without_bytecode: bool = False,
) -> list[float]:
    """Return the import time of `module_file` in `runs` fresh interpreters."""
    samples = []
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-c", _TIMER, json.dumps([str(path) for path in paths]), str(module_file)],
            env=_child_environment(environment, without_bytecode),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"importing {module_file} failed:\n{completed.stderr[-2000:]}")
        samples.append(float(completed.stdout.strip().splitlines()[-1]))
    return samples


def baseline_sample(runs: int) -> ImportSample:
    with tempfile.TemporaryDirectory() as directory:
        module_file = Path(directory) / "baseline.py"
        module_file.write_text(BASELINE_SOURCE, encoding="utf-8")
        return ImportSample("baseline: import boto3 + one SQS client", time_import(module_file, [], {}, runs))


def function_paths(spec: FunctionSpec) -> list[Path]:
    """Return sys.path entries as Lambda has them: the function's code, then each layer's code.

    Third-party packages come from this interpreter's site-packages, standing in for the dependency layers.
    """
    return [spec.code_uri, *spec.layers]


def function_sample(spec: FunctionSpec, runs: int, without_bytecode: bool = False) -> ImportSample:
    module_file = spec.code_uri / f"{spec.module_name}.py"
    seconds = time_import(module_file, function_paths(spec), spec.environment, runs, without_bytecode)
    return ImportSample(spec.logical_id, seconds)
