"""RELIABILITY.md: the figures of one run, the command that produced them, and where it ran."""

from __future__ import annotations

import json

from devstack.reliability.harness import RunResult, figures


def _table(rows: list[tuple[str, object]]) -> str:
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _outcome(values: dict[str, object]) -> str:
    clean = values["lost"] == 0 and values["duplicated"] == 0 and values["dead_letters_after_redrive"] == 0
    return "PASS" if clean else "FAIL"


# Figures that add up across shards; the rest (seed, duration, per-state maps) are shown per shard.
_SUMMED = (
    "pushes",
    "citizens",
    "plain_pushes",
    "deliveries",
    "concurrent_deliveries",
    "pushes_never_accepted",
    "content_pushes",
    "tickets",
    "messages",
    "media_files",
    "notices",
    "wechat_sends",
    "lost",
    "duplicated",
    "resent_after_unknown",
    "undeliverable",
    "dead_letters_before_redrive",
    "dead_letters_after_redrive",
    "workers_killed",
    "duration_seconds",
)


def render_shards(results: list[RunResult], command: str) -> str:
    """Return the report of a run split into shards, each on a fresh local stack: totals, then each shard."""
    per_shard = [figures(result) for result in results]
    totals = {name: sum(values[name] for values in per_shard) for name in _SUMMED}  # type: ignore[misc]
    aws: dict[str, int] = {}
    wechat: dict[str, int] = {}
    for result in results:
        for service, kinds in result.aws_faults.items():
            for kind, count in kinds.items():
                aws[f"{service} {kind}"] = aws.get(f"{service} {kind}", 0) + count
        for name, count in result.wechat_faults.items():
            wechat[name] = wechat.get(name, 0) + count
    rows: list[tuple[str, object]] = [
        ("outcome", _outcome(totals)),
        ("shards (each a fresh local stack)", len(results)),
        *[(name.replace("_", " "), totals[name]) for name in _SUMMED],
        ("AWS faults injected", sum(aws.values())),
        *[(f"AWS faults: {name}", count) for name, count in sorted(aws.items())],
        ("WeChat faults injected", sum(wechat.values())),
        *[(f"WeChat faults: {name}", count) for name, count in sorted(wechat.items())],
        ("date (UTC)", results[0].started_at.strftime("%Y-%m-%d %H:%M")),
        ("machine", results[0].machine),
    ]
    sections = [
        "# Reliability\n\n"
        "Figures of one run of the fault-injection harness on the local emulated stack "
        "(docs/reliability.md explains what it injects and checks), split into shards that each ran on "
        "a fresh local stack, one after the other, with their own citizens and seed. Rerun with:\n\n"
        f"```\n{command}\n```\n\n"
        f"## Totals\n\n{_table(rows)}\n"
    ]
    for index, result in enumerate(results, start=1):
        sections.append(f"## Shard {index} (seed {result.options.seed})\n\n{_shard_body(result)}")
    return "\n".join(sections)


def _shard_body(result: RunResult) -> str:
    full = render(result, "")
    return full[full.index("| figure | value |") :]


def render(result: RunResult, command: str) -> str:
    """Return the Markdown report of `result`."""
    values = figures(result)
    findings = result.findings
    outcome = _outcome(values)
    aws = [
        (f"AWS faults: {service} {kind}", count)
        for service, kinds in result.aws_faults.items()
        for kind, count in kinds.items()
    ]
    wechat = [(f"WeChat faults: {name}", count) for name, count in result.wechat_faults.items()]
    killed = [(f"workers killed: {function}", count) for function, count in result.workers_killed.items()]
    rows: list[tuple[str, object]] = [
        ("outcome", outcome),
        ("pushes", values["pushes"]),
        ("citizens", values["citizens"]),
        ("pushes in plain mode (the rest in safe mode)", values["plain_pushes"]),
        ("deliveries to the webhook", values["deliveries"]),
        ("deliveries sent concurrently with another of the same push", values["concurrent_deliveries"]),
        ("deliveries repeated because the webhook did not accept one", values["webhook_errors"]),
        ("pushes the webhook never accepted", values["pushes_never_accepted"]),
        *aws,
        *wechat,
        *killed,
        ("tickets", values["tickets"]),
        ("content messages expected / stored", f"{values['content_pushes']} / {values['messages']}"),
        ("media files in S3 with the served checksum", values["media_files"]),
        ("notices (ledger items)", values["notices"]),
        ("notices by final state", ", ".join(f"{k} {v}" for k, v in values["notices_by_state"].items())),
        ("messages the WeChat emulator delivered", values["wechat_sends"]),
        (
            "lost (messages, media, notices)",
            f"{values['lost']} ({values['lost_messages']}, {values['lost_media']}, {values['lost_notices']})",
        ),
        (
            "duplicated (messages, notices)",
            f"{values['duplicated']} ({values['duplicated_messages']}, {values['duplicated_notices']})",
        ),
        ("notice parts resent after an unknown result", values["resent_after_unknown"]),
        ("undeliverable notices", values["undeliverable"]),
        ("dead-letter messages before redrive", json.dumps(result.dead_letters_before)),
        ("dead-letter messages after redrive", json.dumps(result.dead_letters_after)),
        ("duration", f"{values['duration_seconds']} s"),
        ("seed", values["seed"]),
        ("date (UTC)", result.started_at.strftime("%Y-%m-%d %H:%M")),
        ("machine", result.machine),
    ]
    problems = "\n".join(f"- {problem}" for problem in findings.problems[:50]) or "none"
    return (
        "# Reliability\n\n"
        "Figures of one run of the fault-injection harness on the local emulated stack "
        "(docs/reliability.md explains what it injects and checks). Rerun with:\n\n"
        f"```\n{command}\n```\n\n"
        f"{_table(rows)}\n\n"
        f"Problems found:\n\n{problems}\n"
    )
