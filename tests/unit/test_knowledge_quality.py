"""Precision and recall of the knowledge matcher on labelled citizen messages, at the deployed threshold.

The messages (tests/fixtures/knowledge_labelled_questions.json) were written for this test: ordinary,
colloquial, mistyped and voice-recognised questions, plus complaints, near-misses and unrelated
messages that must not be answered. A wrong automatic answer is worse than none, so precision must stay
at 0.95 or more; the recall floor makes a matcher that never answers fail too.

The held-out messages (tests/fixtures/knowledge_heldout_questions.json) were written apart and never
used to tune the matcher; they show how it does on phrasings it was not adjusted to. Their precision
must reach 0.95 as well. If it does not, raise the deployed threshold or strengthen the refusals using
the labelled set only, never by editing the matcher against the held-out messages.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.knowledge_quality import deployed_threshold, heldout_messages, labelled_messages, measure
from intake.knowledge_base import KnowledgeEntry, starter_rows
from intake.knowledge_matching import best_match
from intake.workflow_config import get_workflow_config

MIN_PRECISION = 0.95
# Measured 0.685 with the starter set at threshold 0.7; the floor leaves room for small changes.
MIN_RECALL = 0.6
# Measured 0.478 on the held-out set with the starter set at threshold 0.7; the matcher was not changed after.
MIN_HELDOUT_RECALL = 0.4


def starter_entries() -> list[KnowledgeEntry]:
    return [KnowledgeEntry.model_validate(row.model_dump()) for row in starter_rows(get_workflow_config())]


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return measure()


def test_labelled_set_size_and_labels() -> None:
    # GIVEN the labelled messages and the starter set
    messages = labelled_messages()
    starter_ids = {row.entry_id for row in starter_rows(get_workflow_config())}

    # WHEN they are counted
    unanswerable = [message for message in messages if message["expected"] is None]
    unknown = {message["expected"] for message in messages} - starter_ids - {None}

    # THEN there are at least 120 messages, 40 of them not to be answered, and every label is an entry
    assert len(messages) >= 120
    assert len(unanswerable) >= 40
    assert unknown == set()


def test_quality_uses_the_threshold_that_template_deploys(figures: dict[str, Any]) -> None:
    # GIVEN / WHEN the figures are measured without a threshold
    # THEN they use template.yaml's KnowledgeMatchThreshold default
    assert figures["threshold"] == deployed_threshold()


def test_quality_precision_at_least_095(figures: dict[str, Any]) -> None:
    # GIVEN the labelled messages and the starter set
    # WHEN every message is matched at the deployed threshold
    # THEN at most 5 in 100 automatic answers are wrong
    assert figures["precision"] >= MIN_PRECISION, figures["wrong_answers"]


def test_quality_recall_above_floor(figures: dict[str, Any]) -> None:
    # GIVEN the labelled messages and the starter set
    # WHEN every message is matched at the deployed threshold
    # THEN enough consultations are answered at once
    assert figures["recall"] >= MIN_RECALL, figures


def test_quality_complaints_are_never_answered() -> None:
    # GIVEN the labelled complaints (which mention knowledge-base words on purpose)
    entries = starter_entries()
    complaints = [message["text"] for message in labelled_messages() if message["kind"] == "complaint"]

    # WHEN each is matched
    answered = [text for text in complaints if best_match(text, entries, deployed_threshold()) is not None]

    # THEN none is answered from the knowledge base
    assert answered == []


def test_heldout_set_size_labels_and_independence() -> None:
    # GIVEN the held-out messages, the labelled messages and the starter set
    heldout = heldout_messages()
    labelled_texts = {message["text"] for message in labelled_messages()}
    starter_ids = {row.entry_id for row in starter_rows(get_workflow_config())}

    # WHEN they are counted and compared
    unanswerable = [message for message in heldout if message["expected"] is None]
    unknown = {message["expected"] for message in heldout} - starter_ids - {None}
    shared = [message["text"] for message in heldout if message["text"] in labelled_texts]

    # THEN there are at least 60, 25 of them not to be answered, every label is an entry, none is reused
    assert len(heldout) >= 60
    assert len(unanswerable) >= 25
    assert unknown == set()
    assert shared == []


def test_quality_heldout_precision_at_least_095(figures: dict[str, Any]) -> None:
    # GIVEN the held-out messages and the starter set
    # WHEN every message is matched at the deployed threshold
    # THEN at most 5 in 100 automatic answers are wrong there too
    assert figures["heldout_messages"] == len(heldout_messages())
    assert figures["heldout_precision"] >= MIN_PRECISION, figures["heldout_wrong_answers"]


def test_quality_heldout_recall_above_floor(figures: dict[str, Any]) -> None:
    # GIVEN the held-out messages and the starter set
    # WHEN every message is matched at the deployed threshold
    # THEN some consultations phrased in new ways are still answered
    assert figures["heldout_recall"] >= MIN_HELDOUT_RECALL, figures


@pytest.mark.parametrize(
    "text",
    [
        "公积金提取被拒绝了凭什么",
        "交通违章罚款怎么交，交警乱贴罚单",
        "我的社保卡被人冒用了怎么办",
    ],
)
def test_quality_grievances_about_starter_services_are_not_answered(text: str) -> None:
    # GIVEN the starter set, whose entries score these grievances above the deployed threshold
    # WHEN a grievance phrased as a question is matched
    match = best_match(text, starter_entries(), deployed_threshold())

    # THEN it is not answered, so it reaches a department instead of closing itself
    assert match is None
