"""Run the benchmarks and rewrite BENCHMARKS.md: `make bench` or `python -m bench [--runs N]`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from bench import report
from bench.cold_start import baseline_sample, function_sample
from bench.machine import describe
from bench.package_size import measure_package_sizes
from bench.warm_webhook import measure_warm_webhook
from devstack.template import ROOT, Resolver, function_specs, load_template, parameter_values

WEBHOOK_FUNCTIONS = ("WebhookVerifyFunction", "MessageIngestFunction")


def _stand_in_resolver(template: dict) -> Resolver:
    """Resolve the functions' environments with placeholder resource names; imports need no real AWS."""
    from devstack.template import Physical

    names = {
        logical_id: Physical(
            ref=f"bench-{logical_id}",
            attributes={"Arn": f"arn:aws:bench:::{logical_id}", "QueueName": logical_id, "KeyId": logical_id},
        )
        for logical_id in template["Resources"]
    }
    return Resolver(
        parameters=parameter_values(template), resources=names, conditions=template.get("Conditions", {})
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=10, help="fresh interpreters per cold-start figure (default 10)"
    )
    parser.add_argument(
        "--pushes", type=int, default=2000, help="pushes per warm-webhook figure (default 2000)"
    )
    parser.add_argument("--skip-build", action="store_true", help="skip `sam build` and the package sizes")
    arguments = parser.parse_args(argv)

    template = load_template()
    specs = function_specs(template, _stand_in_resolver(template))

    print(f"cold start: {arguments.runs} fresh interpreters per module", flush=True)
    baseline = baseline_sample(arguments.runs)
    cold = [function_sample(spec, arguments.runs) for spec in specs]
    webhook_specs = [spec for spec in specs if spec.logical_id in WEBHOOK_FUNCTIONS]
    without_bytecode = [
        function_sample(spec, arguments.runs, without_bytecode=True) for spec in webhook_specs
    ]

    print(f"warm webhook: {arguments.pushes} pushes per mode", flush=True)
    warm = measure_warm_webhook(arguments.pushes)

    sizes = None if arguments.skip_build else measure_package_sizes(template)

    text = report.render(
        machine=describe(),
        command=f"make bench (python -m bench --runs {arguments.runs} --pushes {arguments.pushes})",
        date=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"),
        baseline=baseline,
        cold=cold,
        without_bytecode=without_bytecode,
        warm=warm,
        sizes=sizes,
    )
    (ROOT / "BENCHMARKS.md").write_text(text, encoding="utf-8")
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
