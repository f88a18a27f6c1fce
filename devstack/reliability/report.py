"""RELIABILITY.md: the figures of one run, the command that produced them, and where it ran."""

from __future__ import annotations

import json

from devstack.reliability.harness import RunResult, figures


def _table(rows: list[tuple[str, object]]) -> str:
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def render(result: RunResult, command: str) -> str:
    """Return the Markdown report of `result`."""
    values = figures(result)
    findings = result.findings
    outcome = (
        "PASS"
        if values["lost"] == 0 and values["duplicated"] == 0 and values["dead_letters_after_redrive"] == 0
        else "FAIL"
    )
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
