"""Run the benchmarks and rewrite BENCHMARKS.md: `make bench` or `python -m bench [--runs N]`."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import boto3

from bench import report
from bench.cold_start import baseline_sample, function_sample
from bench.knowledge_quality import measure as measure_knowledge_quality
from bench.machine import describe
from bench.package_size import measure_package_sizes
from bench.pipeline import DEFAULT_CITIZENS, DEFAULT_PUSHES, measure_pipeline
from bench.shipped_tree import build_shipped_trees
from bench.warm_webhook import CREDENTIALS, measure_warm_webhook
from devstack.moto_server import MotoServer, fake_aws_environment
from devstack.resources import create_stack
from devstack.template import ROOT, FunctionSpec, function_specs, load_template


def _emulated_function_specs(moto: MotoServer) -> list[FunctionSpec]:
    """Create the stack on a moto server and return the functions with environments that reach it.

    Some handlers read a secret or a table while they initialise, which belongs to their cold start;
    moto answers those calls on loopback.
    """
    session = boto3.session.Session(
        aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    )
    stack = create_stack(
        session, endpoint_url=moto.url, secret_values={"WeChatSecret": json.dumps(CREDENTIALS)}
    )
    aws = fake_aws_environment(moto.url)
    specs = function_specs(stack.template, stack.resolver)
    for spec in specs:
        spec.environment.update(aws)
    return specs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=10, help="fresh interpreters per cold-start figure (default 10)"
    )
    parser.add_argument(
        "--pushes", type=int, default=2000, help="pushes per warm-webhook figure (default 2000)"
    )
    parser.add_argument(
        "--pipeline-pushes",
        type=int,
        default=DEFAULT_PUSHES,
        help=f"pushes of the local-stack pipeline burst (default {DEFAULT_PUSHES}; 0 skips it)",
    )
    parser.add_argument("--skip-build", action="store_true", help="skip `sam build` and the package sizes")
    arguments = parser.parse_args(argv)

    print(f"cold start: {arguments.runs} fresh interpreters per module", flush=True)
    template = load_template()
    with MotoServer() as moto, tempfile.TemporaryDirectory(prefix="bench-shipped-") as directory:
        specs = _emulated_function_specs(moto)
        shipped, without_pyc = build_shipped_trees(
            template, sorted({spec.code_uri for spec in specs}), Path(directory)
        )
        baseline = baseline_sample(arguments.runs)
        cold = [function_sample(spec, shipped, arguments.runs) for spec in specs]
        without_bytecode = [function_sample(spec, without_pyc, arguments.runs) for spec in specs]

    print(f"warm webhook: {arguments.pushes} pushes per mode", flush=True)
    warm = measure_warm_webhook(arguments.pushes)

    sizes = None if arguments.skip_build else measure_package_sizes(template)

    pipeline = None
    if arguments.pipeline_pushes > 0:
        citizens = min(DEFAULT_CITIZENS, arguments.pipeline_pushes)
        print(f"pipeline: {arguments.pipeline_pushes} pushes from {citizens} citizens", flush=True)
        pipeline = measure_pipeline(arguments.pipeline_pushes, citizens)

    print("knowledge base: labelled messages against the starter entries", flush=True)
    knowledge = measure_knowledge_quality()

    text = report.render(
        machine=describe(),
        command=(
            f"make bench (python -m bench --runs {arguments.runs} --pushes {arguments.pushes} "
            f"--pipeline-pushes {arguments.pipeline_pushes})"
        ),
        date=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
        baseline=baseline,
        cold=cold,
        without_bytecode=without_bytecode,
        warm=warm,
        sizes=sizes,
        pipeline=pipeline,
        knowledge=knowledge,
    )
    (ROOT / "BENCHMARKS.md").write_text(text, encoding="utf-8")
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
