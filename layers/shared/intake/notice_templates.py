"""Template messages: which template each notice kind uses and how its fields are filled.

The configuration is `notice_templates.json` next to this module. The city replaces the placeholder
template ids with the ids of the templates it picked in the WeChat console. A kind whose
`template_id` is null has no template fallback, so its notices reach only citizens inside the
customer-service window. Each field maps to a list of value sources, tried in order until one
gives a non-empty value:

- `ticket_id`: the notice's ticket id.
- `status`: the phrase for the notice's `status` (`notice_template.phrase.<status>` in
  texts.zh-CN.toml), else the ticket status label.
- `created_at`: when the notice was requested, in China Standard Time.
- `value:<name>`: `CitizenNotice.template_values[<name>]`, set by the producer (names in use:
  `summary`, a short description of the matter).
- `text:<key>`: a fixed text from texts.zh-CN.toml.

WeChat checks each value against the type in the field's key (`thing2` is a `thing`); values are
cut to those limits here, because WeChat rejects the whole message (errcode 47003) otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from intake import clock, texts
from intake.records import CitizenNotice, NoticeKind

TEMPLATES_FILE = Path(__file__).with_name("notice_templates.json")

# WeChat's client_msg_id is at most 64 characters; WeChat sends one template message per
# openid + client_msg_id within 10 minutes.
MAX_CLIENT_MSG_ID = 64

# Maximum length in characters of each template field type (the key without its trailing number).
FIELD_LIMITS: dict[str, int] = {
    "thing": 20,
    "character_string": 32,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "phrase": 5,
    "name": 10,
    "phone_number": 17,
    "car_number": 8,
    "amount": 32,
    "time": 32,
    "date": 32,
    "const": 20,
}
_FIELD_KEY = re.compile(r"^([a-z_]+?)(\d+)$")
_SOURCE = re.compile(r"^(ticket_id|status|created_at|value:[A-Za-z0-9_]+|text:[A-Za-z0-9_.]+)$")


class TemplateConfigError(ValueError):
    """The template configuration cannot fill a field; fix notice_templates.json or the producer."""


def field_type(key: str) -> str:
    """Return the WeChat value type of a template field key, for example `thing` for `thing2`."""
    match = _FIELD_KEY.match(key)
    if match is None or match.group(1) not in FIELD_LIMITS:
        raise TemplateConfigError(
            f"template field {key!r} is not a WeChat field key such as thing2 or character_string1"
        )
    return match.group(1)


class KindTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    template_id: str | None = Field(default=None, min_length=1, max_length=128)
    fields: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, fields: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, sources in fields.items():
            field_type(key)
            if not sources:
                raise TemplateConfigError(f"template field {key!r} has no value source")
            for source in sources:
                if not _SOURCE.match(source):
                    raise TemplateConfigError(
                        f"template field {key!r} has an unknown value source {source!r}"
                    )
        return fields


class NoticeTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Base URL of the citizen's ticket page; the ticket id is appended. Empty means no link.
    ticket_url_base: str = ""
    kinds: dict[NoticeKind, KindTemplate]

    def for_kind(self, kind: NoticeKind) -> KindTemplate:
        return self.kinds.get(kind, KindTemplate())


@cache
def load_templates(path: Path = TEMPLATES_FILE) -> NoticeTemplates:
    """Read and validate the template configuration once per cold start."""
    return NoticeTemplates.model_validate(json.loads(path.read_text(encoding="utf-8")))


def client_msg_id(notice_id: str) -> str:
    """Return WeChat's deduplication id for a notice: the notice id, or its SHA-256 hex when too long."""
    if len(notice_id) <= MAX_CLIENT_MSG_ID and notice_id.isascii():
        return notice_id
    return hashlib.sha256(notice_id.encode("utf-8")).hexdigest()


def fit_value(key: str, value: str) -> str:
    """Cut `value` to what WeChat accepts for field `key`: its type's length, ASCII only for codes."""
    kind = field_type(key)
    limit = FIELD_LIMITS[kind]
    if kind in {"character_string", "number", "letter", "symbol", "phone_number"}:
        value = "".join(character for character in value if character.isascii() and character.isprintable())
    value = value.strip()
    if len(value) <= limit:
        return value
    if kind == "thing":
        return value[: limit - 1] + "…"
    return value[:limit]


def _format_time(at: float) -> str:
    moment = clock.china_datetime(at)
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"


def _status_phrase(status: str) -> str:
    try:
        return texts.text(f"notice_template.phrase.{status}")
    except KeyError:
        return texts.status_label(status)


def _resolve(source: str, notice: CitizenNotice) -> str:
    if source == "ticket_id":
        return notice.ticket_id or ""
    if source == "status":
        return _status_phrase(notice.status) if notice.status else ""
    if source == "created_at":
        return _format_time(notice.created_at)
    name, _, argument = source.partition(":")
    if name == "value":
        return notice.template_values.get(argument, "")
    return texts.text(argument)


def template_url(templates: NoticeTemplates, notice: CitizenNotice) -> str:
    if not templates.ticket_url_base or not notice.ticket_id:
        return ""
    return templates.ticket_url_base + quote(notice.ticket_id, safe="")


def build_template_message(
    templates: NoticeTemplates, notice: CitizenNotice, template_id: str
) -> dict[str, Any]:
    """Build the body of `cgi-bin/message/template/send` for `notice`.

    Raises TemplateConfigError when no source of a field gives a value.
    """
    data: dict[str, dict[str, str]] = {}
    for key, sources in templates.for_kind(notice.kind).fields.items():
        value = ""
        for source in sources:
            value = fit_value(key, _resolve(source, notice))
            if value:
                break
        if not value:
            raise TemplateConfigError(
                f"no value for template field {key!r} of kind {notice.kind}: add a text: source to "
                f"notice_templates.json or set it in the notice's template_values"
            )
        data[key] = {"value": value}
    body: dict[str, Any] = {
        "touser": notice.open_id,
        "template_id": template_id,
        "data": data,
        "client_msg_id": client_msg_id(notice.notice_id),
    }
    url = template_url(templates, notice)
    if url:
        body["url"] = url
    return body
