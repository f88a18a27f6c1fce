"""Quality and speed of the knowledge-base matcher on the labelled and the held-out citizen messages.

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

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
LABELLED_FILE = FIXTURES / "knowledge_labelled_questions.json"
# Messages written apart from the labelled set and never used to tune the matcher: their figures show
# how the matcher does on phrasings it was not adjusted to.
HELDOUT_FILE = FIXTURES / "knowledge_heldout_questions.json"


def deployed_threshold() -> float:
    """Return the default of template.yaml's KnowledgeMatchThreshold parameter."""
    return float(parameter_values(load_template())["KnowledgeMatchThreshold"])


def labelled_messages(path: Path = LABELLED_FILE) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["messages"]
    return messages


def heldout_messages() -> list[dict[str, Any]]:
    return labelled_messages(HELDOUT_FILE)


def _score(
    messages: list[dict[str, Any]], match: Any
) -> tuple[dict[str, int], list[dict[str, Any]], list[float]]:
    """Count TP/FP/FN/TN of `match` (text -> entry id or None) over `messages`; return wrong answers and ms."""
    counts = {"true_positive": 0, "false_positive": 0, "false_negative": 0, "true_negative": 0}
    wrong: list[dict[str, Any]] = []
    latencies: list[float] = []
    for message in messages:
        started = time.perf_counter()
        answered = match(message["text"])
        latencies.append((time.perf_counter() - started) * 1000)
        expected = message["expected"]
        if answered is None:
            counts["false_negative" if expected else "true_negative"] += 1
        elif answered == expected:
            counts["true_positive"] += 1
        else:
            counts["false_positive"] += 1
            wrong.append({"text": message["text"], "expected": expected, "answered": answered})
    return counts, wrong, latencies


def _precision(counts: dict[str, int]) -> float:
    answered = counts["true_positive"] + counts["false_positive"]
    return counts["true_positive"] / answered if answered else 0.0


def _recall(counts: dict[str, int], messages: list[dict[str, Any]]) -> float:
    labelled = sum(1 for message in messages if message["expected"])
    return counts["true_positive"] / labelled if labelled else 0.0


def measure(threshold: float | None = None) -> dict[str, Any]:
    """Return precision, recall, counts, threshold, import time and match latencies in ms.

    The `heldout_*` figures are precision, recall, message count and wrong answers on the held-out set.

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

    def match(text: str) -> str | None:
        found = best_match(text, entries, used)
        return found.entry.entry_id if found else None

    messages = labelled_messages()
    counts, wrong, latencies = _score(messages, match)
    heldout = heldout_messages()
    heldout_counts, heldout_wrong, _ = _score(heldout, match)
    first_call_ms, later = (latencies[0], latencies[1:]) if latencies else (0.0, [])
    return {
        "threshold": used,
        "messages": len(messages),
        "labelled_with_entry": sum(1 for message in messages if message["expected"]),
        **counts,
        "precision": _precision(counts),
        "recall": _recall(counts, messages),
        "wrong_answers": wrong,
        "heldout_messages": len(heldout),
        "heldout_precision": _precision(heldout_counts),
        "heldout_recall": _recall(heldout_counts, heldout),
        "heldout_wrong_answers": heldout_wrong,
        "import_ms": round(import_ms, 1),
        "first_call_ms": round(first_call_ms, 1),
        "median_match_ms": round(statistics.median(later), 3) if later else 0.0,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), ensure_ascii=False, indent=1))
