"""intake.knowledge_base: entries and their audit items in TicketsTable (moto), validity, the read cache."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from devstack.resources import Stack
from intake import clock, knowledge_base
from intake.keys import KNOWLEDGE_PK, knowledge_entry_sk
from intake.knowledge_base import (
    KnowledgeContent,
    KnowledgeEntry,
    KnowledgeEntryExistsError,
    KnowledgeEntryNotFoundError,
    KnowledgeRepository,
    KnowledgeVersionConflictError,
    cached_active_entries,
)

STAFF = "arn:aws:iam::123456789012:user/editor-chen"
CONTENT = KnowledgeContent(
    question="护照怎么办理",
    keywords=["护照"],
    synonyms=["办护照需要什么材料"],
    answer="示例答复：到出入境办证大厅办理。",
    department="gaj",
)


@pytest.fixture
def table(stack: Stack) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


@pytest.fixture
def repository(table: Any, monkeypatch: pytest.MonkeyPatch) -> KnowledgeRepository:
    monkeypatch.setattr(clock, "now", lambda: 1_796_000_000.0)
    knowledge_base.clear_cache()
    return KnowledgeRepository(table)


def calls_of(table: Any, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every call of `operation` made through the table's client."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    table.meta.client.meta.events.register(f"provide-client-params.dynamodb.{operation}", record)
    return seen


def test_repository_create_one_transaction(repository: KnowledgeRepository, table: Any) -> None:
    # GIVEN a recorder of the table's write calls
    transactions = calls_of(table, "TransactWriteItems")
    single_puts = calls_of(table, "PutItem")

    # WHEN an entry is created
    entry = repository.create(CONTENT, STAFF, entry_id="kb-passport")

    # THEN one transaction wrote the entry and its audit item, and nothing was written outside it
    assert len(transactions) == 1
    assert [item["Put"]["Item"]["item_type"] for item in transactions[0]["TransactItems"]] == [
        "knowledge_entry",
        "knowledge_audit",
    ]
    assert single_puts == []
    assert repository.get("kb-passport") == entry
    history = repository.history("kb-passport")
    assert [(record.action, record.actor, record.version) for record in history] == [("created", STAFF, 1)]
    assert history[0].changes["question"] == {"from": None, "to": "护照怎么办理"}


def test_repository_create_taken_id(repository: KnowledgeRepository) -> None:
    # GIVEN an entry
    repository.create(CONTENT, STAFF, entry_id="kb-passport")

    # WHEN another entry is created with the same id
    with pytest.raises(KnowledgeEntryExistsError):
        repository.create(
            CONTENT.model_copy(update={"question": "别的问题"}), "someone-else", entry_id="kb-passport"
        )

    # THEN the first entry and its single audit record are unchanged
    assert repository.get("kb-passport").question == "护照怎么办理"  # type: ignore[union-attr]
    assert len(repository.history("kb-passport")) == 1


def test_repository_update_bumps_version_and_records_the_change(repository: KnowledgeRepository) -> None:
    # GIVEN an entry at version 1
    repository.create(CONTENT, STAFF, entry_id="kb-passport")

    # WHEN its answer is changed by another staff member naming version 1
    updated = repository.update(
        "kb-passport", CONTENT.model_copy(update={"answer": "新的示例答复。"}), 1, "arn:editor-wang"
    )

    # THEN version 2 is stored and the audit names who changed what
    assert updated.version == 2
    assert repository.get("kb-passport") == updated
    last = repository.history("kb-passport")[-1]
    assert (last.action, last.actor, last.version) == ("updated", "arn:editor-wang", 2)
    assert last.changes == {"answer": {"from": "示例答复：到出入境办证大厅办理。", "to": "新的示例答复。"}}


def test_repository_update_stale_version(
    repository: KnowledgeRepository,
) -> None:
    # GIVEN an entry already updated to version 2
    repository.create(CONTENT, STAFF, entry_id="kb-passport")
    repository.update("kb-passport", CONTENT.model_copy(update={"answer": "第二版答复。"}), 1, STAFF)

    # WHEN a second editor saves over version 1
    with pytest.raises(KnowledgeVersionConflictError) as raised:
        repository.update("kb-passport", CONTENT.model_copy(update={"answer": "第三版答复。"}), 1, "late")

    # THEN the conflict names both versions and neither the entry nor the audit changed
    assert (raised.value.expected, raised.value.current) == (1, 2)
    assert repository.get("kb-passport").answer == "第二版答复。"  # type: ignore[union-attr]
    assert len(repository.history("kb-passport")) == 2


def test_repository_update_racing_a_concurrent_write_conflicts(
    repository: KnowledgeRepository, table: Any
) -> None:
    # GIVEN an entry, and another writer that changes it between our read and our transaction
    repository.create(CONTENT, STAFF, entry_id="kb-passport")

    def concurrent_write(**_: Any) -> None:
        table.meta.client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", concurrent_write)
        table.update_item(
            Key={"PK": KNOWLEDGE_PK, "SK": knowledge_entry_sk("kb-passport")},
            UpdateExpression="SET version = :v, answer = :a",
            ExpressionAttributeValues={":v": 2, ":a": "别人刚改的答复。"},
        )

    table.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", concurrent_write)

    # WHEN we update naming version 1
    with pytest.raises(KnowledgeVersionConflictError) as raised:
        repository.update("kb-passport", CONTENT.model_copy(update={"answer": "我的答复。"}), 1, STAFF)

    # THEN the conditional put refused it: the other writer's answer stays and no audit item was added
    assert raised.value.current == 2
    assert repository.get("kb-passport").answer == "别人刚改的答复。"  # type: ignore[union-attr]
    assert len(repository.history("kb-passport")) == 1


def test_repository_update_of_unknown_entry_is_not_found(repository: KnowledgeRepository) -> None:
    # GIVEN an empty base
    # WHEN an unknown entry is updated
    # THEN KnowledgeEntryNotFoundError names it
    with pytest.raises(KnowledgeEntryNotFoundError, match="kb-missing"):
        repository.update("kb-missing", CONTENT, 1, STAFF)


def test_repository_update_without_change_writes_nothing(repository: KnowledgeRepository, table: Any) -> None:
    # GIVEN an entry
    repository.create(CONTENT, STAFF, entry_id="kb-passport")
    transactions = calls_of(table, "TransactWriteItems")

    # WHEN it is saved with the same content
    entry = repository.update("kb-passport", CONTENT, 1, STAFF)

    # THEN nothing is written and the version stays
    assert transactions == []
    assert entry.version == 1


def test_repository_retire_keeps_entry(repository: KnowledgeRepository) -> None:
    # GIVEN an active entry
    repository.create(CONTENT, STAFF, entry_id="kb-passport")

    # WHEN it is retired twice
    retired = repository.retire("kb-passport", STAFF)
    again = repository.retire("kb-passport", STAFF)

    # THEN it is kept as retired, no longer active, and audited once as retired
    assert retired.status == "retired"
    assert again.version == retired.version
    assert repository.get("kb-passport") is not None
    assert repository.active_entries(date(2026, 12, 4)) == []
    assert [record.action for record in repository.history("kb-passport")] == ["created", "retired"]


def test_repository_active_entries_respect_validity_dates(repository: KnowledgeRepository) -> None:
    # GIVEN entries valid before, during and after 2026-12-04
    day = date(2026, 12, 4)
    repository.create(CONTENT.model_copy(update={"valid_to": date(2026, 12, 3)}), STAFF, entry_id="kb-past")
    repository.create(
        CONTENT.model_copy(update={"valid_from": day, "valid_to": day}), STAFF, entry_id="kb-today"
    )
    repository.create(
        CONTENT.model_copy(update={"valid_from": date(2026, 12, 5)}), STAFF, entry_id="kb-future"
    )
    repository.create(CONTENT, STAFF, entry_id="kb-always")

    # WHEN the active entries of that day are read
    active = repository.active_entries(day)

    # THEN only the open-ended entry and the one valid that very day are returned
    assert sorted(entry.entry_id for entry in active) == ["kb-always", "kb-today"]


def test_entry_is_valid_on_includes_both_ends() -> None:
    # GIVEN an entry valid for December 2026
    entry = KnowledgeEntry(
        **CONTENT.model_dump() | {"valid_from": date(2026, 12, 1), "valid_to": date(2026, 12, 31)},
        entry_id="kb-december",
    )

    # WHEN / THEN its first and last days are included and the days around them are not
    assert entry.is_valid_on(date(2026, 12, 1))
    assert entry.is_valid_on(date(2026, 12, 31))
    assert not entry.is_valid_on(date(2026, 11, 30))
    assert not entry.is_valid_on(date(2027, 1, 1))


def test_content_with_reversed_validity_is_rejected() -> None:
    # GIVEN / WHEN content whose validity ends before it starts
    # THEN the model refuses it
    with pytest.raises(ValueError, match="valid_from is after valid_to"):
        KnowledgeContent(
            **CONTENT.model_dump() | {"valid_from": date(2026, 12, 2), "valid_to": date(2026, 12, 1)}
        )


def test_cached_active_entries_query_once(repository: KnowledgeRepository, table: Any) -> None:
    # GIVEN one entry and a recorder of queries
    repository.create(CONTENT, STAFF, entry_id="kb-passport")
    queries = calls_of(table, "Query")

    # WHEN the cached reader is asked three times
    found = [cached_active_entries(repository, date(2026, 12, 4)) for _ in range(3)]

    # THEN the table was queried once and every result contains the entry
    assert len(queries) == 1
    assert all([entry.entry_id for entry in entries] == ["kb-passport"] for entries in found)
