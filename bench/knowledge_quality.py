"""Quality and speed of the knowledge-base matcher on the labelled citizen messages.

Runs `intake.knowledge_matching.best_match` over every message of
tests/fixtures/knowledge_labelled_questions.json against the starter entries, at the threshold that
template.yaml deploys (parameter KnowledgeMatchThreshold) unless one is given. A message counts as:

- true positive: the matcher answered with the labelled entry;
- false positive: it answered a message labelled null, or answered with a different entry;
- false negative: it did not answer a message labelled with an entry.

Precision = TP / (TP + FP) (how often an automatic answer is right), recall = TP / labelled messages
(how many consultations are answered at once).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from devstack.template import load_template, parameter_values

LABELLED_FILE = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "knowledge_labelled_questions.json"
)


def deployed_threshold() -> float:
    """Return the default of template.yaml's KnowledgeMatchThreshold parameter."""
    return float(parameter_values(load_template())["KnowledgeMatchThreshold"])


def labelled_messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(LABELLED_FILE.read_text(encoding="utf-8"))["messages"]
    return messages


def measure(threshold: float | None = None) -> dict[str, Any]:
    """Return precision, recall, counts, threshold, import time and match latencies in ms.

    `import_ms` times importing the matcher and knowledge-base modules in this process (modules that
    were already imported cost nothing). The segmenter's dictionary loads on the first match, so
    `first_call_ms` includes it and `median_match_ms` covers the later matches.
    """
    started = time.perf_counter()
    from intake.knowledge_base import KnowledgeEntry, starter_rows
    from intake.knowledge_matching import best_match
    from intake.workflow_config import get_workflow_config

    import_ms = (time.perf_counter() - started) * 1000
    used = deployed_threshold() if threshold is None else threshold
    entries = [KnowledgeEntry.model_validate(row.model_dump()) for row in starter_rows(get_workflow_config())]
    counts = {"true_positive": 0, "false_positive": 0, "false_negative": 0, "true_negative": 0}
    wrong: list[dict[str, Any]] = []
    latencies: list[float] = []
    first_call_ms = None
    for message in labelled_messages():
        started = time.perf_counter()
        match = best_match(message["text"], entries, used)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if first_call_ms is None:
            first_call_ms = elapsed_ms
        else:
            latencies.append(elapsed_ms)
        answered = match.entry.entry_id if match else None
        expected = message["expected"]
        if answered is None:
            counts["false_negative" if expected else "true_negative"] += 1
        elif answered == expected:
            counts["true_positive"] += 1
        else:
            counts["false_positive"] += 1
            wrong.append({"text": message["text"], "expected": expected, "answered": answered})
    answered_count = counts["true_positive"] + counts["false_positive"]
    labelled = sum(1 for message in labelled_messages() if message["expected"])
    return {
        "threshold": used,
        "messages": counts["true_positive"]
        + counts["false_positive"]
        + counts["false_negative"]
        + counts["true_negative"],
        "labelled_with_entry": labelled,
        **counts,
        "precision": counts["true_positive"] / answered_count if answered_count else 0.0,
        "recall": counts["true_positive"] / labelled if labelled else 0.0,
        "wrong_answers": wrong,
        "import_ms": round(import_ms, 1),
        "first_call_ms": round(first_call_ms or 0.0, 1),
        "median_match_ms": round(statistics.median(latencies), 3) if latencies else 0.0,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), ensure_ascii=False, indent=1))
