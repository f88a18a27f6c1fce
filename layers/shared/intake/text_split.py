"""Splitting of notice texts into parts that fit WeChat's customer-service text limit.

WeChat rejects a customer-service text whose content exceeds 2048 bytes of UTF-8 (errcode 45002).
A longer notice is sent as several messages, in order. The parts are cut between characters
(code points), never inside a multi-byte UTF-8 sequence, and preferably after a line break, so
joining the parts gives back the original text exactly. The parts carry no numbering for that reason.
"""

from __future__ import annotations

# Maximum UTF-8 size of the `text.content` of one customer-service message.
MAX_TEXT_BYTES = 2048

# Break points tried in order inside the longest prefix that fits: a line break, then the end of a
# sentence (Chinese or ASCII punctuation), then a space. The cut goes after the break character.
_BREAKS = ("\n", "。！？!?；;", " 　")

# A break point is used only when it keeps at least this share of the fitting prefix, so that an
# early line break does not produce a run of tiny messages, each costing one unit of quota.
_MIN_PART_SHARE = 0.5


class UnencodableTextError(ValueError):
    """The text contains a lone surrogate code point, which has no UTF-8 encoding."""


def utf8_size(text: str) -> int:
    """Return the size of `text` in UTF-8 bytes; raises UnencodableTextError on lone surrogates."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise UnencodableTextError(
            f"text contains an unencodable code point at index {err.start}; fix the producer's text"
        ) from err


def _longest_fitting_prefix(text: str, max_bytes: int) -> str:
    # Cutting the encoded bytes can end inside a multi-byte sequence; errors="ignore" then drops only
    # that incomplete trailing sequence, because the rest is valid UTF-8.
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _cut_position(prefix: str) -> int:
    minimum = int(len(prefix) * _MIN_PART_SHARE)
    for characters in _BREAKS:
        position = max(prefix.rfind(character) for character in characters)
        if position + 1 > minimum:
            return position + 1
    return len(prefix)


def split_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> list[str]:
    """Split `text` into parts of at most `max_bytes` UTF-8 bytes whose concatenation is `text`.

    Returns `[text]` when it fits. Raises UnencodableTextError when the text cannot be encoded and
    ValueError when `max_bytes` cannot hold one character (less than 4).
    """
    if max_bytes < 4:
        raise ValueError(f"max_bytes must be at least 4 (one UTF-8 character), got {max_bytes}")
    utf8_size(text)
    parts: list[str] = []
    rest = text
    while utf8_size(rest) > max_bytes:
        cut = _cut_position(_longest_fitting_prefix(rest, max_bytes))
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts
