"""Splitting of long notice texts into customer-service parts of at most 2048 UTF-8 bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.text_split import MAX_TEXT_BYTES, UnencodableTextError, split_text


def test_split_text_short_text_is_one_part() -> None:
    text = "您的工单 DG20261204-0001 已受理。"

    parts = split_text(text)

    assert parts == [text]


def test_split_text_prefers_line_breaks() -> None:
    paragraph = "办理情况说明" * 100 + "\n"  # 1801 bytes per paragraph
    text = paragraph * 3

    parts = split_text(text)

    assert parts == [paragraph, paragraph, paragraph]


def test_split_text_without_breaks_cuts_between_characters() -> None:
    text = "答" * 1500  # 4500 bytes, 3 bytes per character

    parts = split_text(text)

    assert [len(part.encode("utf-8")) for part in parts] == [2046, 2046, 408]
    assert "".join(parts) == text


def test_split_text_keeps_four_byte_characters_whole() -> None:
    text = "a" + "😀" * 1000  # 4001 bytes; the emoji never align with the 2048-byte limit

    parts = split_text(text)

    assert all(len(part.encode("utf-8")) <= MAX_TEXT_BYTES for part in parts)
    assert "".join(parts) == text
    assert all(part.encode("utf-8").decode("utf-8") == part for part in parts)


def test_split_text_rejects_lone_surrogate() -> None:
    text = "坏字符\ud800"

    with pytest.raises(UnencodableTextError):
        split_text(text)


def test_split_text_rejects_limit_below_one_character() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        split_text("text", max_bytes=3)


@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3000),
    st.integers(min_value=4, max_value=300),
)
def test_split_text_parts_fit_and_join_to_original(text: str, max_bytes: int) -> None:
    parts = split_text(text, max_bytes=max_bytes)

    assert "".join(parts) == text
    assert all(len(part.encode("utf-8")) <= max_bytes for part in parts)
    assert all(part for part in parts) or parts == [""]
