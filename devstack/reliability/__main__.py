"""`python -m devstack.reliability --pushes 2000 --citizens 200 --seed 1 --report RELIABILITY.md`."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
from pathlib import Path

from devstack.reliability.harness import RunOptions, figures, run
from devstack.reliability.report import render, render_shards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.reliability", description=__doc__)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=6, help="function workers to SIGKILL during the run")
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="split the pushes, citizens and kills into this many runs, each on a fresh local stack "
        "with seed, seed+1, ... (moto slows down as its tables and queues grow)",
    )
    parser.add_argument("--report", type=Path, help="write the Markdown report to this file")
    arguments = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the local stack stops its workers and moto on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("devstack.function").setLevel(logging.ERROR)
    logging.getLogger("devstack.reliability").setLevel(logging.INFO)

    shards = max(1, arguments.shards)
    results = [
        run(
            RunOptions(
                arguments.pushes // shards,
                arguments.citizens // shards,
                arguments.seed + index,
                kills=arguments.kills // shards,
            )
        )
        for index in range(shards)
    ]
    shard_figures = [figures(result) for result in results]
    values = {
        name: sum(figure[name] for figure in shard_figures)
        for name in ("lost", "duplicated", "dead_letters_after_redrive")
    }
    print(json.dumps(shard_figures, ensure_ascii=False, indent=2))
    for result in results:
        for problem in result.findings.problems:
            print(f"problem: {problem}")
    if arguments.report is not None:
        command = "python -m devstack.reliability " + shlex.join(sys.argv[1:] if argv is None else argv)
        text = render(results[0], command) if shards == 1 else render_shards(results, command)
        arguments.report.write_text(text, encoding="utf-8")
    ok = values["lost"] == 0 and values["duplicated"] == 0 and values["dead_letters_after_redrive"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
