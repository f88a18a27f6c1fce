"""Template-message bodies: field mapping per notice kind and WeChat's value limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intake.notice_templates import (
    NoticeTemplates,
    TemplateConfigError,
    build_template_message,
    client_msg_id,
    fit_value,
    load_templates,
)
from intake.records import CitizenNotice, NoticeKind

# 2026-12-04 10:30 China Standard Time.
CREATED_AT = 1_796_351_400.0


def _notice(**overrides: object) -> CitizenNotice:
    values: dict[str, object] = {
        "notice_id": "notice-1",
        "kind": NoticeKind.STATUS,
        "open_id": "oCitizen001",
        "ticket_id": "DG20261204-0001",
        "status": "dispatched",
        "text": "您的工单 DG20261204-0001 已派发至 市城管局 办理。",
        "created_at": CREATED_AT,
    }
    values.update(overrides)
    return CitizenNotice.model_validate(values)


def test_notice_templates_configuration_covers_every_kind() -> None:
    templates = load_templates()

    assert set(templates.kinds) == set(NoticeKind)


def test_notice_templates_status_message_fields() -> None:
    templates = load_templates()
    notice = _notice()

    body = build_template_message(templates, notice, "TEMPLATE")

    assert body["touser"] == "oCitizen001"
    assert body["client_msg_id"] == "notice-1"
    assert body["data"]["character_string1"] == {"value": "DG20261204-0001"}
    assert body["data"]["phrase3"] == {"value": "已派单"}
    assert body["data"]["thing2"] == {"value": "工单办理进度更新"}
    assert body["data"]["time4"] == {"value": "2026年12月4日 10:30"}
    assert "url" not in body


def test_notice_templates_summary_value_is_cut_to_thing_limit() -> None:
    templates = load_templates()
    notice = _notice(template_values={"summary": "东城街道某小区门口的路灯已经连续三个晚上不亮了请尽快维修"})

    body = build_template_message(templates, notice, "TEMPLATE")

    assert body["data"]["thing2"]["value"] == "东城街道某小区门口的路灯已经连续三个晚…"
    assert len(body["data"]["thing2"]["value"]) == 20


def test_notice_templates_link_uses_configured_base() -> None:
    templates = load_templates().model_copy(update={"ticket_url_base": "https://12345.example.gov.cn/t/"})

    body = build_template_message(templates, _notice(), "TEMPLATE")

    assert body["url"] == "https://12345.example.gov.cn/t/DG20261204-0001"


def test_notice_templates_missing_value_raises() -> None:
    templates = NoticeTemplates.model_validate(
        {"kinds": {"status": {"template_id": "T", "fields": {"character_string1": ["ticket_id"]}}}}
    )

    with pytest.raises(TemplateConfigError, match="character_string1"):
        build_template_message(templates, _notice(ticket_id=None), "T")


def test_notice_templates_rejects_unknown_source(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps({"kinds": {"status": {"template_id": "T", "fields": {"thing2": ["answer"]}}}}))

    with pytest.raises(ValueError, match="unknown value source"):
        load_templates.__wrapped__(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("character_string1", "DG20261204-0001", "DG20261204-0001"),
        ("character_string1", "工单DG-1", "DG-1"),
        ("character_string1", "X" * 40, "X" * 32),
        ("phrase3", "已受理并派单", "已受理并派"),
        ("thing2", "短文本", "短文本"),
        ("number5", "12345678901234567890123456789012345", "12345678901234567890123456789012"),
    ],
)
def test_notice_templates_fit_value(key: str, value: str, expected: str) -> None:
    assert fit_value(key, value) == expected


def test_notice_templates_client_msg_id_hashes_long_ids() -> None:
    long_id = "n" * 65

    result = client_msg_id(long_id)

    assert len(result) == 64
    assert result != long_id[:64]
    assert client_msg_id("n" * 64) == "n" * 64
