"""Cold-start import time of each handler module, in fresh interpreters, against a boto3 baseline.

Each sample starts a new Python process with the function's environment from template.yaml and its
code and layers on `sys.path` as Lambda unpacks them (`bench.shipped_tree`: built by the layers'
Makefiles, every file stamped 1980-01-01, nothing writable), then times only the import of the handler
module with `time.perf_counter`, so interpreter start-up is excluded from both the samples and the
baseline. The baseline is a bare module that imports boto3 and creates one SQS client; boto3 comes
from this interpreter's site-packages with its `.pyc` files, as the Lambda runtime provides it.
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

from bench.shipped_tree import ShippedTree
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


def _child_environment(extra: dict[str, str]) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # No network is reached at import time; this keeps any stray call on loopback.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        # Lambda's /var/task and /opt are read-only: a module without a valid .pyc compiles at every start.
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


def time_import(
    module_file: Path,
    paths: list[Path],
    environment: dict[str, str],
    runs: int,
) -> list[float]:
    """Return the import time of `module_file` in `runs` fresh interpreters."""
    samples = []
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-c", _TIMER, json.dumps([str(path) for path in paths]), str(module_file)],
            env=_child_environment(environment),
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


def function_sample(spec: FunctionSpec, tree: ShippedTree, runs: int) -> ImportSample:
    paths = tree.paths(spec.code_uri, spec.layers)
    module_file = paths[0] / f"{spec.module_name}.py"
    return ImportSample(spec.logical_id, time_import(module_file, paths, spec.environment, runs))
