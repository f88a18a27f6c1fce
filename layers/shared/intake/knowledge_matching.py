"""Choose the knowledge entry that answers a citizen's message, or none: a wrong answer is worse than none.

A message is normalised (NFKC folds full-width letters and digits, punctuation and spaces go) and cut
into words with jieba (`rjieba`, the Rust jieba-rs binding). An entry can match only when the message
contains one of its `keywords`. Its score (0..1) is the best weighted F1 between the message's words
and the words of its question or one of its synonyms, each word weighted by how rare it is in the base
(IDF). Words the message adds that no phrasing explains lower the score, so "社保局工作人员态度很差"
does not match "社保卡怎么办理" even before the complaint check. The match is refused when:

- the message reports or complains (投诉, 举报, 态度差, ...): it must reach a department;
- the message is a grievance about a service (凭什么, 被拒, 冒用, 乱贴, 太慢, ...): an automatic answer
  would close it unless the citizen asks for a person, so it might never reach a department;
- the message negates the subject ("不是问社保卡") or names a city other than Dongguan;
- the best entry is below the threshold, or a different entry scores nearly as high (ambiguous).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from intake.knowledge_base import KnowledgeEntry

logger = Logger(child=True)

# Words that carry no subject: question words, politeness, particles, and the city's own name.
STOPWORDS = frozenset(
    [
        "请问",
        "你好",
        "您好",
        "你们",
        "我们",
        "我",
        "你",
        "他",
        "她",
        "它",
        "的",
        "了",
        "吗",
        "呢",
        "啊",
        "呀",
        "吧",
        "哦",
        "嗯",
        "哈",
        "么",
        "嘛",
        "啦",
        "喔",
        "哇",
        "是",
        "在",
        "有",
        "和",
        "与",
        "及",
        "或",
        "怎么",
        "怎样",
        "怎么样",
        "如何",
        "什么",
        "哪里",
        "哪儿",
        "哪个",
        "哪些",
        "多少",
        "几",
        "几点",
        "是否",
        "能否",
        "可以",
        "能",
        "会",
        "要",
        "想",
        "需要",
        "想要",
        "问",
        "问下",
        "问一下",
        "一下",
        "咨询",
        "了解",
        "知道",
        "告诉",
        "帮忙",
        "麻烦",
        "谢谢",
        "下",
        "个",
        "这个",
        "那个",
        "这",
        "那",
        "就",
        "也",
        "都",
        "还",
        "又",
        "去",
        "到",
        "给",
        "把",
        "被",
        "让",
        "东莞",
        "东莞市",
        "莞",
        "本市",
        "市里",
        "现在",
        "今天",
        "请",
        "一",
        "呃",
        "额",
        "那么",
        "这么",
        "办法",
        "情况",
        "问题",
        "事情",
        "方面",
        "应该",
        "得",
        "地",
        "着",
        "过",
    ]
)

# A message with one of these reports a problem (投诉/举报/反映) and must reach a department.
COMPLAINT_MARKERS = (
    "投诉",
    "举报",
    "反映",
    "反应一下",
    "曝光",
    "态度差",
    "态度很差",
    "态度恶劣",
    "态度不好",
    "不作为",
    "乱收费",
    "刁难",
    "推诿",
    "踢皮球",
    "骂人",
    "欺负",
    "扰民",
    "太吵",
    "臭死",
    "漏水",
    "停水",
    "没水",
    "停电",
    "索贿",
    "黑心",
    "骗子",
    "诈骗",
    "拖欠",
    "欠薪",
    "不给办",
    "不给我办",
    "不受理",
    "办不了",
    "办了很久",
    "一直没",
    "还没办好",
    "还没下来",
    "还没到",
    "没人管",
    "没人处理",
    "太慢",
    "排队太久",
    "差评",
    "打不通",
    "没人接",
    "乱开",
    "乱罚",
    "乱扣",
    "不公平",
    "玩手机",
    "占用",
    "堵住",
    "堵塞",
)

# A message with one of these is a grievance about a service (a refusal, misuse of the citizen's
# identity, an unfair charge or a delay): it asks for redress, not for the procedure, even when it is
# phrased as a question ("公积金提取被拒绝了凭什么").
GRIEVANCE_MARKERS = (
    "凭什么",
    "凭啥",
    "被拒",
    "拒绝了",
    "拒绝我",
    "拒办",
    "驳回",
    "不批",
    "冒用",
    "冒名",
    "冒领",
    "顶替",
    "盗用",
    "盗刷",
    "被盗",
    "乱收",
    "乱贴",
    "乱罚",
    "乱扣",
    "多收",
    "强制收费",
    "不给办",
    "不让办",
    "不给我",
    "推诿",
    "推脱",
    "刁难",
    "为难",
    "欺骗",
    "骗",
    "太慢",
    "一直不",
    "一直没",
    "一直拖",
    "拖着",
    "没人管",
    "没人理",
    "不理人",
    "不合理",
    "不讲理",
    "弄丢",
    "搞丢",
    "算错",
    "谁来负责",
    "跑了好几趟",
    "跑了几趟",
)

# Phrases that negate the subject that follows them.
NEGATION_MARKERS = ("不是问", "不是要", "不是说", "不是想", "不想问", "不是关于", "不办", "不想办", "不用办")

# Cities whose services the Dongguan base does not answer for (Hong Kong and Macau are destinations
# of the 港澳通行证 questions, so they are not listed).
OTHER_PLACES = (
    "深圳",
    "广州",
    "惠州",
    "佛山",
    "中山",
    "珠海",
    "江门",
    "肇庆",
    "清远",
    "汕头",
    "湛江",
    "韶关",
    "河源",
    "梅州",
    "汕尾",
    "阳江",
    "茂名",
    "潮州",
    "揭阳",
    "云浮",
    "北京",
    "上海",
    "天津",
    "重庆",
    "长沙",
    "武汉",
    "成都",
    "杭州",
    "南宁",
    "厦门",
)

# Weight of a message word that no entry uses, relative to the rarest word of the base.
UNKNOWN_WORD_WEIGHT = 0.5
# Share of the score that comes from carrying a keyword at all.
KEYWORD_BASE = 0.25
# The best entry must beat a different entry by this much, or the match is ambiguous.
AMBIGUITY_MARGIN = 0.05

_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class KnowledgeMatch:
    entry: KnowledgeEntry
    score: float


@dataclass(frozen=True)
class _IndexedEntry:
    entry: KnowledgeEntry
    keywords: tuple[str, ...]
    phrasings: tuple[frozenset[str], ...]


@dataclass(frozen=True)
class _Index:
    entries: tuple[_IndexedEntry, ...]
    weights: dict[str, float]
    unknown_weight: float


def normalise(text: str) -> str:
    """Fold full-width forms (NFKC), lower-case, and drop punctuation, symbols and spaces."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text).lower())


@cache
def _segmenter() -> Any:
    """Load this process's jieba segmenter on first use (its dictionary load measured 0.2 to 0.6 s, x86_64)."""
    import rjieba

    return rjieba.Jieba()


def _teach(words: Iterable[str]) -> None:
    """Add the base's keywords to the segmenter's dictionary, so they are cut as whole words."""
    segmenter = _segmenter()
    for word in words:
        if len(word) > 1 and not segmenter.has_word(word):
            segmenter.add_word(word, None, None)


def words_of(text: str) -> frozenset[str]:
    """Return the content words of normalised `text` (search-mode cut, stopwords dropped)."""
    cut = _segmenter().cut_for_search(text)
    return frozenset(word for word in cut if word not in STOPWORDS and not word.isdigit())


def _keyword_marker(entry: KnowledgeEntry) -> str:
    """Return the pseudo-word that stands for "one of this entry's keywords" (no real word has a NUL)."""
    return f"\x00{entry.entry_id}"


def _mark_keywords(
    words: frozenset[str], text: str, keywords: tuple[str, ...], marker: str
) -> frozenset[str]:
    """Replace the words of the entry's keywords found in `text` by the entry's marker.

    The keywords of one entry are interchangeable ("社会保障卡" asks what "社保卡" asks), and the
    segmenter cuts a keyword into different pieces in different contexts, so every keyword in the text
    counts as the same single word.
    """
    found = [keyword for keyword in keywords if keyword in text]
    if not found:
        return words
    return frozenset(word for word in words if not any(word in keyword for keyword in found)) | {marker}


def _build_index(entries: Sequence[KnowledgeEntry]) -> _Index:
    keywords_by_entry = [
        tuple(normalise(word) for word in entry.keywords if normalise(word)) for entry in entries
    ]
    _teach(word for keywords in keywords_by_entry for word in keywords)
    indexed = []
    document_frequency: dict[str, int] = {}
    for entry, keywords in zip(entries, keywords_by_entry, strict=True):
        marker = _keyword_marker(entry)
        phrasings = tuple(
            _mark_keywords(words, normalised, keywords, marker)
            for normalised in (normalise(text) for text in [entry.question, *entry.synonyms])
            if (words := words_of(normalised))
        )
        indexed.append(_IndexedEntry(entry=entry, keywords=keywords, phrasings=phrasings))
        for word in set().union(*phrasings, keywords, {marker}):
            document_frequency[word] = document_frequency.get(word, 0) + 1
    total = max(len(entries), 1)
    weights = {word: math.log(1 + total / count) for word, count in document_frequency.items()}
    rarest = math.log(1 + total)
    return _Index(entries=tuple(indexed), weights=weights, unknown_weight=UNKNOWN_WORD_WEIGHT * rarest)


_IndexKey = tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]
_index_cache: dict[_IndexKey, _Index] = {}


def _index(entries: Sequence[KnowledgeEntry]) -> _Index:
    """Return the index of `entries`, rebuilt only when an id, question, keyword or synonym changes."""
    key = tuple(
        (entry.entry_id, entry.question, tuple(entry.keywords), tuple(entry.synonyms)) for entry in entries
    )
    found = _index_cache.get(key)
    if found is None:
        _index_cache.clear()
        found = _index_cache[key] = _build_index(entries)
    return found


def _similarity(message: frozenset[str], phrasing: frozenset[str], index: _Index) -> float:
    """Weighted F1 of the message's words against one phrasing's words."""

    def weight(word: str) -> float:
        return index.weights.get(word, index.unknown_weight)

    shared = sum(weight(word) for word in message & phrasing)
    if shared == 0:
        return 0.0
    covered = shared / sum(weight(word) for word in phrasing)
    explained = shared / sum(weight(word) for word in message)
    return 2 * covered * explained / (covered + explained)


def refusal_reason(text: str) -> str | None:
    """Return why a normalised message must not be answered from the base at all, or None."""
    if any(marker in text for marker in COMPLAINT_MARKERS):
        return "complaint"
    if any(marker in text for marker in GRIEVANCE_MARKERS):
        return "grievance"
    if any(marker in text for marker in NEGATION_MARKERS):
        return "negation"
    if any(place in text for place in OTHER_PLACES):
        return "other_place"
    return None


def score_entries(text: str, entries: Sequence[KnowledgeEntry]) -> list[KnowledgeMatch]:
    """Return every entry with a keyword in `text` and its score, best first (no refusal checks)."""
    normalised = normalise(text)
    if not normalised or not entries:
        return []
    index = _index(entries)
    message = words_of(normalised)
    scored = []
    # The index was built from equal matching fields; the match carries the caller's entry (its answer).
    for item, entry in zip(index.entries, entries, strict=True):
        hits = [keyword for keyword in item.keywords if keyword in normalised]
        if not hits:
            continue
        words = _mark_keywords(message, normalised, item.keywords, _keyword_marker(item.entry))
        similarity = max((_similarity(words, phrasing, index) for phrasing in item.phrasings), default=0.0)
        scored.append(KnowledgeMatch(entry=entry, score=KEYWORD_BASE + (1 - KEYWORD_BASE) * similarity))
    return sorted(scored, key=lambda match: match.score, reverse=True)


def best_match(text: str, entries: Sequence[KnowledgeEntry], threshold: float) -> KnowledgeMatch | None:
    """Return the entry that answers `text` with a score of at least `threshold`, or None."""
    normalised = normalise(text)
    reason = refusal_reason(normalised)
    if reason is not None:
        logger.debug("knowledge match refused", extra={"reason": reason})
        return None
    scored = score_entries(text, entries)
    if not scored or scored[0].score < threshold:
        return None
    best = scored[0]
    if len(scored) > 1 and best.score - scored[1].score < AMBIGUITY_MARGIN:
        logger.debug(
            "knowledge match ambiguous",
            extra={"entry_ids": [best.entry.entry_id, scored[1].entry.entry_id]},
        )
        return None
    return KnowledgeMatch(entry=best.entry, score=round(best.score, 4))
