"""Render BENCHMARKS.md from measured figures."""

from __future__ import annotations

from collections.abc import Sequence

from bench.cold_start import ImportSample
from bench.package_size import PackageSize
from bench.warm_webhook import WarmFigure

COLD_START_TARGET_RATIO = 1.5
WARM_TARGET_RATIO = 2.0
WEBHOOK_FUNCTIONS = ("WebhookVerifyFunction", "MessageIngestFunction")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1_000_000:.0f} µs"


def _verdict(ratio: float, target: float) -> str:
    return (
        f"met (≤ {target}×)" if ratio <= target else f"missed by {ratio - target:.2f}× (target ≤ {target}×)"
    )


def _cold_table(baseline: ImportSample, cold: Sequence[ImportSample]) -> list[str]:
    lines = [
        "| module | median | spread (min–max) | ratio to baseline | target |",
        "| --- | --- | --- | --- | --- |",
        f"| {baseline.name} | {_ms(baseline.median)} | {_ms(baseline.spread[0])}–{_ms(baseline.spread[1])} | 1.00× | |",
    ]
    for sample in cold:
        ratio = sample.median / baseline.median
        target = _verdict(ratio, COLD_START_TARGET_RATIO) if sample.name in WEBHOOK_FUNCTIONS else ""
        lines.append(
            f"| {sample.name} | {_ms(sample.median)} | {_ms(sample.spread[0])}–{_ms(sample.spread[1])} "
            f"| {ratio:.2f}× | {target} |"
        )
    return lines


def _bytecode_table(cold: Sequence[ImportSample], without_bytecode: Sequence[ImportSample]) -> list[str]:
    with_bytecode = {sample.name: sample for sample in cold}
    lines = [
        "| module | with valid .pyc | compiled from source | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for sample in without_bytecode:
        cached = with_bytecode[sample.name]
        lines.append(
            f"| {sample.name} | {_ms(cached.median)} | {_ms(sample.median)} | {sample.median / cached.median:.2f}× |"
        )
    return lines


def _warm_table(warm: Sequence[WarmFigure]) -> list[str]:
    lines = [
        "| mode | handler median | handler p95 | floor median | ratio to floor | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for figure in warm:
        ratio = figure.handler_median / figure.floor_median
        lines.append(
            f"| {figure.mode} | {_us(figure.handler_median)} | {_us(figure.handler_p95)} "
            f"| {_us(figure.floor_median)} | {ratio:.2f}× | {_verdict(ratio, WARM_TARGET_RATIO)} |"
        )
    return lines


def _size_table(sizes: Sequence[PackageSize] | None) -> list[str]:
    if sizes is None:
        return ["Not measured in this run (`--skip-build`)."]
    lines = ["| function | unzipped with layers | zipped with layers |", "| --- | --- | --- |"]
    for size in sizes:
        lines.append(
            f"| {size.function} | {size.unzipped_bytes / 1_048_576:.1f} MiB | {size.zipped_bytes / 1_048_576:.1f} MiB |"
        )
    return lines


def render(
    machine: str,
    command: str,
    date: str,
    baseline: ImportSample,
    cold: Sequence[ImportSample],
    without_bytecode: Sequence[ImportSample],
    warm: Sequence[WarmFigure],
    sizes: Sequence[PackageSize] | None,
) -> str:
    sections = [
        "# Benchmarks",
        "",
        "Written by `make bench`; every figure below comes from the run described here. Ratios compare "
        "against a baseline measured in the same run, because the machines are shared and noisy.",
        "",
        f"- Machine: {machine}",
        f"- Command: `{command}`",
        f"- Date: {date}",
        "",
        "## Cold start: handler module import",
        "",
        "Import time of each function's handler module in a fresh interpreter (interpreter start-up "
        "excluded), with the function's environment from template.yaml and its code and layers on "
        "`sys.path`. Baseline: a module that imports boto3 and creates one SQS client. Target for the two "
        f"webhook functions: at most {COLD_START_TARGET_RATIO}× the baseline.",
        "",
        *_cold_table(baseline, cold),
        "",
        "## Bytecode",
        "",
        "The same imports with every module compiled from source (an empty `PYTHONPYCACHEPREFIX` and "
        "`PYTHONDONTWRITEBYTECODE=1`), which is what happens in Lambda when the `.pyc` files in the "
        "package do not match their sources: SAM zips files with 1980 timestamps, so timestamp-checked "
        "`.pyc` files never match.",
        "",
        *_bytecode_table(cold, without_bytecode),
        "",
        "## Warm webhook",
        "",
        "Handler time per push through `lambda_handler` with an API Gateway event, the SQS call answered "
        "by botocore's Stubber and the secret cached, against the floor: signature checks, decryption "
        f"and parsing alone with the same libraries. Target: at most {WARM_TARGET_RATIO}× the floor.",
        "",
        *_warm_table(warm),
        "",
        "## Package size",
        "",
        "Each function with its layers as `sam build` (no Docker, arm64 wheels) produces them.",
        "",
        *_size_table(sizes),
        "",
    ]
    return "\n".join(sections)
