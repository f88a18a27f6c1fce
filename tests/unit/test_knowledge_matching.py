"""intake.knowledge_matching: answers consultations, refuses complaints, negations, other cities, ambiguity."""

from __future__ import annotations

import pytest

from intake.knowledge_base import KnowledgeEntry
from intake.knowledge_matching import best_match, normalise, score_entries

THRESHOLD = 0.7


def entry(entry_id: str, question: str, keywords: list[str], synonyms: list[str]) -> KnowledgeEntry:
    return KnowledgeEntry(
        entry_id=entry_id,
        question=question,
        keywords=keywords,
        synonyms=synonyms,
        answer="示例答复。",
    )


SOCIAL_CARD = entry("kb-card", "社保卡怎么办理", ["社保卡"], ["社保卡补办", "社保卡丢了怎么办", "申领社保卡"])
FUND = entry("kb-fund", "住房公积金怎么提取", ["公积金"], ["公积金怎么取", "离职提取公积金"])
PASS = entry("kb-pass", "港澳通行证怎么办理", ["港澳通行证"], ["港澳通行证续签", "港澳通行证在哪里办"])
BASE = [SOCIAL_CARD, FUND, PASS]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("社保卡丢了怎么补办", "kb-card"),
        ("你好，我想问一下公积金怎么取？", "kb-fund"),
        ("港澳通行证续签在哪里办", "kb-pass"),
    ],
)
def test_best_match_answers_a_consultation(text: str, expected: str) -> None:
    # GIVEN a small base
    # WHEN a citizen asks one of its questions in their own words
    match = best_match(text, BASE, THRESHOLD)

    # THEN the entry that answers it is chosen with a score at or above the threshold
    assert match is not None
    assert match.entry.entry_id == expected
    assert THRESHOLD <= match.score <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "社保局工作人员态度很差我要投诉",
        "我要投诉公积金中心，提取申请一个月了还没到账",
        "举报有人卖假的港澳通行证",
        "社保卡办了两个月还没办好，一直没人处理",
    ],
)
def test_best_match_rejects_complaints(text: str) -> None:
    # GIVEN a base whose keywords appear in the message
    # WHEN the message complains or reports instead of asking
    match = best_match(text, BASE, THRESHOLD)

    # THEN nothing is answered, so the message reaches a department
    assert match is None


@pytest.mark.parametrize(
    "text",
    [
        "公积金提取被拒绝了凭什么",
        "我的社保卡被人冒用了怎么办",
        "社保卡被别人盗用了怎么补办",
        "离职提取公积金，申请被驳回了",
        "港澳通行证续签在哪里办被多收费",
        "港澳通行证在哪里办，中介骗了我两千块",
    ],
)
def test_best_match_refuses_grievances(text: str) -> None:
    # GIVEN a base whose keywords and question words appear in the message
    # WHEN the message is a grievance (a refusal, misuse of identity, obstruction, fraud) phrased as a question
    match = best_match(text, BASE, THRESHOLD)

    # THEN it is not answered: an automatic answer would close the complaint before a department sees it
    assert match is None


def test_best_match_refuses_a_negated_subject() -> None:
    # GIVEN a citizen who says the question is NOT about the social security card
    text = "我不是问社保卡，是问社保断缴了怎么补交"

    # WHEN it is matched
    match = best_match(text, BASE, THRESHOLD)

    # THEN the card entry is not offered although the keyword is present
    assert match is None
    assert score_entries(text, BASE)[0].entry.entry_id == "kb-card"


@pytest.mark.parametrize("text", ["深圳社保卡怎么办理", "广州公积金怎么提取"])
def test_best_match_refuses_another_city(text: str) -> None:
    # GIVEN a Dongguan base
    # WHEN the citizen asks about another city's service
    match = best_match(text, BASE, THRESHOLD)

    # THEN the Dongguan answer is not given
    assert match is None


def test_best_match_refuses_an_unrelated_message() -> None:
    # GIVEN the base
    # WHEN the message shares no keyword with any entry
    match = best_match("路灯坏了好几天", BASE, THRESHOLD)

    # THEN nothing matches
    assert match is None


def test_best_match_refuses_when_two_entries_tie() -> None:
    # GIVEN two entries that claim the same question
    twin = entry("kb-card-2", "社保卡怎么办理", ["社保卡"], ["社保卡补办", "社保卡丢了怎么办", "申领社保卡"])

    # WHEN a citizen asks it
    match = best_match("社保卡丢了怎么办", [SOCIAL_CARD, twin], THRESHOLD)

    # THEN neither is chosen: the match is ambiguous
    assert match is None


def test_best_match_threshold_boundary() -> None:
    # GIVEN a message that matches with some unexplained words
    text = "社保卡在银行领的要怎么激活才能用"
    score = score_entries(text, BASE)[0].score

    # WHEN the threshold is just above and just at its score
    above = best_match(text, BASE, min(score + 0.01, 1.0))
    at = best_match(text, BASE, score - 1e-9)

    # THEN it is refused above and answered at the threshold
    assert above is None
    assert at is not None


@pytest.mark.parametrize("text", ["", "   ", "？？！！。。", "😀😀"])
def test_best_match_refuses_empty_and_punctuation_only_text(text: str) -> None:
    # GIVEN / WHEN a message without words
    # THEN nothing matches
    assert best_match(text, BASE, THRESHOLD) is None


def test_best_match_with_an_empty_base_answers_nothing() -> None:
    # GIVEN / WHEN the base has no entries
    # THEN nothing matches
    assert best_match("社保卡怎么办理", [], THRESHOLD) is None


def test_normalise_folds_full_width_and_drops_punctuation() -> None:
    # GIVEN text with full-width digits, letters and punctuation
    # WHEN it is normalised
    # THEN it is half-width, lower-case and without punctuation or spaces
    assert normalise("１２３４５ 热线，几点上班？ＡＢ") == "12345热线几点上班ab"


def test_full_width_scores_like_half_width() -> None:
    # GIVEN the same question in full-width and half-width forms
    # WHEN both are scored
    full = score_entries("港澳通行证，续签在哪里办？", BASE)[0].score
    half = score_entries("港澳通行证续签在哪里办", BASE)[0].score

    # THEN the scores are equal
    assert full == half


def test_best_match_sees_a_changed_entry_at_once() -> None:
    # GIVEN an entry that does not yet cover a phrasing
    before = entry("kb-fund", "住房公积金怎么提取", ["公积金"], [])
    text = "离职了公积金能全部取出来吗"
    first = best_match(text, [before], 0.8)

    # WHEN the phrasing is added as a synonym, even without a new version number
    after = entry("kb-fund", "住房公积金怎么提取", ["公积金"], ["离职公积金能取出来吗"])
    second = best_match(text, [after], 0.8)

    # THEN the changed entry is used without a restart
    assert first is None
    assert second is not None


def test_best_match_keyword_forms_equivalent() -> None:
    # GIVEN an entry whose phrasings use only the short form of its two keywords
    card = entry("kb-card", "社保卡怎么办理", ["社保卡", "社会保障卡"], ["社保卡在哪里申请", "申领社保卡"])

    # WHEN a citizen asks with the long form
    match = best_match("请问社会保障卡在哪里可以申请", [card, FUND, PASS], THRESHOLD)

    # THEN the long form counts as the short one and the entry answers
    assert match is not None
    assert match.entry.entry_id == "kb-card"


def test_best_match_returns_the_callers_entry() -> None:
    # GIVEN a base that was matched once
    best_match("社保卡丢了怎么办", BASE, THRESHOLD)

    # WHEN the same entry id and version come with another answer
    edited = SOCIAL_CARD.model_copy(update={"answer": "改过的示例答复。"})
    match = best_match("社保卡丢了怎么办", [edited, FUND, PASS], THRESHOLD)

    # THEN the match carries the answer it was given, not the one seen before
    assert match is not None
    assert match.entry.answer == "改过的示例答复。"
