"""Emergency guard: texts that mention a fire, gas leak, injury or violent crime get the 110/119/120 reply.

12345 does not dispatch police, fire or ambulance, so the citizen is told at once to call those
numbers. The keywords live in texts.zh-CN.toml (`[emergency].keywords`) so that staff can extend them.
"""

from __future__ import annotations

from intake import texts


def emergency_keywords() -> tuple[str, ...]:
    """Return the configured emergency keywords."""
    return tuple(texts.lookup("emergency.keywords"))


def mentions_emergency(text: str | None) -> bool:
    """Return True when `text` contains any emergency keyword (plain substring match)."""
    if not text:
        return False
    return any(keyword in text for keyword in emergency_keywords())
