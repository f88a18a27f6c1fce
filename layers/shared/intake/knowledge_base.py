"""The knowledge base: consultation questions (咨询) with a confirmed answer, stored in TicketsTable.

All entries share the partition `PK = KB` (`SK = ENTRY#{entry_id}`), so one Query loads the whole base.
Every create, update and retire writes the entry and one audit item (`SK = AUDIT#{entry_id}#{version}`:
who, when, which fields changed from what to what) in one transaction. Updates are optimistic: they
name the `version` they read and fail with KnowledgeVersionConflictError when another writer got there
first. Retiring sets `status = retired` and keeps the entry. `intake.knowledge_matching` chooses the
entry that answers a citizen's message.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intake import clock, texts
from intake.keys import KNOWLEDGE_PK, knowledge_audit_prefix, knowledge_audit_sk, knowledge_entry_sk
from intake.workflow_config import WorkflowConfig

logger = Logger(child=True)

STARTER_FILE = Path(__file__).with_name("knowledge_base_starter.json")
ENTRY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ENTRY_PREFIX = "ENTRY#"
# Ids that equal a literal route under /knowledge/ (`POST /knowledge/import`): API Gateway would route
# `/knowledge/import` to that resource, so such an entry could never be read, changed or retired.
RESERVED_ENTRY_IDS = frozenset({"import"})
# A one-character keyword (社, 证) is in nearly every message, so it would let an entry match anything.
MIN_KEYWORD_LENGTH = 2
# Seconds that `cached_active_entries` keeps the base of one table before it queries again.
CACHE_SECONDS = 60.0
# Fields that staff edit. The repository sets the other (bookkeeping) fields.
CONTENT_FIELDS = (
    "question",
    "keywords",
    "synonyms",
    "answer",
    "category",
    "department",
    "valid_from",
    "valid_to",
    "status",
)


def _clean_words(values: list[str]) -> list[str]:
    """Strip each word, drop empty ones and repeats, keep the order."""
    seen: dict[str, None] = {}
    for value in values:
        word = value.strip()
        if word:
            seen.setdefault(word, None)
    return list(seen)


class KnowledgeContent(BaseModel):
    """Content of one entry as staff write it: the body of POST and PUT /knowledge, one import row."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(min_length=2, max_length=200, description="The canonical question, Chinese")
    keywords: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Words of which at least one must be in a message to match, each of 2 characters or more",
    )
    synonyms: list[str] = Field(
        default_factory=list, max_length=50, description="Other ways citizens ask: phrasings or words"
    )
    answer: str = Field(min_length=2, max_length=1800, description="Answer text, plain URLs allowed")
    category: str | None = Field(default=None, description="Category code from workflow_config.json")
    department: str | None = Field(default=None, description="Department code from workflow_config.json")
    valid_from: date | None = Field(default=None, description="First day the answer applies (China time)")
    valid_to: date | None = Field(default=None, description="Last day the answer applies (China time)")
    status: Literal["active", "retired"] = "active"

    @field_validator("keywords", "synonyms")
    @classmethod
    def _words(cls, values: list[str]) -> list[str]:
        if any(len(value) > 100 for value in values):
            raise ValueError("each word or phrasing has at most 100 characters")
        return _clean_words(values)

    @field_validator("category", "department", mode="before")
    @classmethod
    def _empty_code_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> KnowledgeContent:
        if not self.keywords:
            raise ValueError("keywords must name at least one word")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise ValueError("valid_from is after valid_to")
        return self

    def unknown_codes(self, config: WorkflowConfig) -> list[str]:
        """Return `field=code` for each category or department code that workflow_config.json lacks."""
        unknown = []
        if self.category is not None and config.category_name(self.category) is None:
            unknown.append(f"category={self.category}")
        if self.department is not None and config.department_name(self.department) is None:
            unknown.append(f"department={self.department}")
        return unknown


def check_entry_id(value: str | None) -> str | None:
    """Reject an id that equals a literal route (RESERVED_ENTRY_IDS); a pydantic validator."""
    if value is not None and value in RESERVED_ENTRY_IDS:
        raise ValueError(f"entry_id {value!r} is reserved for a route")
    return value


class KnowledgeInput(KnowledgeContent):
    """Content as staff send it (POST, PUT, import): checked more strictly than stored entries.

    The stricter checks sit here and not on KnowledgeContent, so entries stored before they existed
    still load (and still match) instead of failing validation when the base is read.
    """

    @field_validator("keywords")
    @classmethod
    def _keyword_length(cls, values: list[str]) -> list[str]:
        if any(len(value) < MIN_KEYWORD_LENGTH for value in values):
            raise ValueError(f"each keyword has at least {MIN_KEYWORD_LENGTH} characters")
        return values


class KnowledgeEntry(KnowledgeContent):
    """One stored entry: the content plus its id and bookkeeping."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    entry_id: str = Field(pattern=ENTRY_ID_PATTERN)
    example: bool = Field(default=False, description="True for the shipped starter entries")
    version: int = Field(default=1, ge=1)
    updated_at: str = ""
    updated_by: str = ""

    def is_valid_on(self, day: date) -> bool:
        """Return True when `day` lies within valid_from..valid_to (open ends are unbounded)."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to

    def content(self) -> KnowledgeContent:
        return KnowledgeContent.model_validate(self.model_dump(include=set(CONTENT_FIELDS)))


class KnowledgeImportRow(KnowledgeInput):
    """One row of an import: the content plus the entry id it creates or replaces."""

    entry_id: str = Field(pattern=ENTRY_ID_PATTERN)
    example: bool = False

    _entry_id = field_validator("entry_id")(check_entry_id)


class KnowledgeAuditRecord(BaseModel):
    """One change of one entry, as `GET /knowledge/{entry_id}/history` returns it."""

    entry_id: str
    action: Literal["created", "updated", "retired"]
    actor: str
    at: str = Field(description="UTC ISO 8601")
    version: int
    changes: dict[str, dict[str, Any]] = Field(
        description='Changed field -> {"from": old value, "to": new value}'
    )


class KnowledgeEntryNotFoundError(LookupError):
    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id
        super().__init__(f"knowledge entry {entry_id} not found")


class KnowledgeEntryExistsError(ValueError):
    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id
        super().__init__(f"knowledge entry {entry_id} already exists")


class KnowledgeVersionConflictError(RuntimeError):
    """The entry changed since the caller read it (or between the read and the write)."""

    def __init__(self, entry_id: str, expected: int, current: int | None) -> None:
        self.entry_id = entry_id
        self.expected = expected
        self.current = current
        super().__init__(f"knowledge entry {entry_id}: expected version {expected}, found {current}")


class KnowledgeStoreError(RuntimeError):
    """DynamoDB rejected a knowledge-base write for a reason other than a failed condition."""


@dataclass(frozen=True)
class RowError:
    """An invalid row of an import; `row` counts from 1, and 0 is the document as a whole.

    `reason` names the text `knowledge.row_error.{reason}` in texts.zh-CN.toml, filled from `params`.
    """

    row: int
    reason: str
    params: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        detail = texts.text(f"knowledge.row_error.{self.reason}", **dict(self.params))
        return texts.text("knowledge.row", row=self.row, detail=detail)


class KnowledgeImportError(ValueError):
    """An import rejected as a whole. `errors` names every invalid row."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"row {error.row}: {error.reason} {dict(error.params)}" for error in errors)
        )

    def describe(self) -> str:
        """Return every row's error in Chinese, for staff."""
        return "；".join(error.describe() for error in self.errors)


@dataclass(frozen=True)
class ImportResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def _item_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _entry_item(entry: KnowledgeEntry) -> dict[str, Any]:
    fields = {key: _item_value(value) for key, value in entry.model_dump().items()}
    return {
        "PK": KNOWLEDGE_PK,
        "SK": knowledge_entry_sk(entry.entry_id),
        "item_type": "knowledge_entry",
    } | fields


def _entry_from_item(item: dict[str, Any]) -> KnowledgeEntry:
    values = {key: int(value) if key == "version" else value for key, value in item.items()}
    return KnowledgeEntry.model_validate(values)


def changed_fields(before: KnowledgeContent | None, after: KnowledgeContent) -> dict[str, dict[str, Any]]:
    """Return `{field: {"from": old, "to": new}}` for each content field that differs."""
    old = before.model_dump(include=set(CONTENT_FIELDS)) if before else {}
    new = after.model_dump(include=set(CONTENT_FIELDS))
    return {
        name: {"from": _item_value(old.get(name)), "to": _item_value(new[name])}
        for name in CONTENT_FIELDS
        if old.get(name) != new[name]
    }


def new_entry_id() -> str:
    """Return a new entry id: `kb-` plus the creation time and random digits, sortable by creation."""
    return f"kb-{int(time.time() * 1000):013d}-{secrets.randbelow(10**6):06d}"


class KnowledgeRepository:
    """Reads and audited writes of knowledge entries in TicketsTable."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.client = table.meta.client

    # -- reads --------------------------------------------------------------------------------------

    def _query(self, prefix: str, consistent: bool = False) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(KNOWLEDGE_PK) & Key("SK").begins_with(prefix),
            "ConsistentRead": consistent,
        }
        while True:
            response = self.table.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def all_entries(self, consistent: bool = False) -> list[KnowledgeEntry]:
        """Return every entry, retired ones included, ordered by entry id."""
        return [_entry_from_item(item) for item in self._query(ENTRY_PREFIX, consistent)]

    def active_entries(self, day: date) -> list[KnowledgeEntry]:
        """Return the entries that are active and valid on `day` (a China Standard Time date)."""
        return [entry for entry in self.all_entries() if entry.status == "active" and entry.is_valid_on(day)]

    def get(self, entry_id: str) -> KnowledgeEntry | None:
        response = self.table.get_item(
            Key={"PK": KNOWLEDGE_PK, "SK": knowledge_entry_sk(entry_id)}, ConsistentRead=True
        )
        item = response.get("Item")
        return _entry_from_item(item) if item else None

    def history(self, entry_id: str) -> list[KnowledgeAuditRecord]:
        """Return the audit records of one entry, oldest first."""
        items = self._query(knowledge_audit_prefix(entry_id), consistent=True)
        return [
            KnowledgeAuditRecord.model_validate(
                {key: int(value) if key == "version" else value for key, value in item.items()}
            )
            for item in items
        ]

    # -- writes -------------------------------------------------------------------------------------

    def create(
        self,
        content: KnowledgeContent,
        actor: str,
        entry_id: str | None = None,
        example: bool = False,
    ) -> KnowledgeEntry:
        """Store a new entry (version 1); raises KnowledgeEntryExistsError when the id is taken."""
        entry = KnowledgeEntry(
            **content.model_dump(),
            entry_id=entry_id or new_entry_id(),
            example=example,
            version=1,
            updated_at=clock.iso_utc(clock.now()),
            updated_by=actor,
        )
        self._commit(entry, None, "created", changed_fields(None, entry))
        logger.info("knowledge entry created", extra={"entry_id": entry.entry_id})
        return entry

    def update(
        self,
        entry_id: str,
        content: KnowledgeContent,
        expected_version: int,
        actor: str,
        example: bool | None = None,
    ) -> KnowledgeEntry:
        """Replace an entry's content if it is still at `expected_version`; returns the new version.

        Raises KnowledgeEntryNotFoundError or KnowledgeVersionConflictError. An update that changes
        nothing returns the stored entry and writes nothing.
        """
        current = self.get(entry_id)
        if current is None:
            raise KnowledgeEntryNotFoundError(entry_id)
        return self._replace(current, content, expected_version, actor, example)

    def _replace(
        self,
        current: KnowledgeEntry,
        content: KnowledgeContent,
        expected_version: int,
        actor: str,
        example: bool | None,
    ) -> KnowledgeEntry:
        entry_id = current.entry_id
        if current.version != expected_version:
            raise KnowledgeVersionConflictError(entry_id, expected_version, current.version)
        changes = changed_fields(current, content)
        keep_example = current.example if example is None else example
        if not changes and keep_example == current.example:
            logger.info("knowledge entry unchanged", extra={"entry_id": entry_id})
            return current
        entry = KnowledgeEntry(
            **content.model_dump(),
            entry_id=entry_id,
            example=keep_example,
            version=current.version + 1,
            updated_at=clock.iso_utc(clock.now()),
            updated_by=actor,
        )
        action: Literal["updated", "retired"] = (
            "retired" if set(changes) == {"status"} and content.status == "retired" else "updated"
        )
        self._commit(entry, expected_version, action, changes)
        logger.info("knowledge entry changed", extra={"entry_id": entry_id, "action": action})
        return entry

    def retire(self, entry_id: str, actor: str, expected_version: int | None = None) -> KnowledgeEntry:
        """Set the entry's status to retired (it is kept for the audit); idempotent."""
        current = self.get(entry_id)
        if current is None:
            raise KnowledgeEntryNotFoundError(entry_id)
        content = current.content().model_copy(update={"status": "retired"})
        version = current.version if expected_version is None else expected_version
        return self.update(entry_id, content, version, actor)

    def upsert(self, rows: list[KnowledgeImportRow], actor: str, only_missing: bool = False) -> ImportResult:
        """Create or replace each row's entry by entry_id; rows equal to the stored entry write nothing.

        A row that does not give `status` keeps the stored entry's status, so a file without a status
        column does not reactivate retired entries (a new entry starts active). With `only_missing`,
        rows whose entry exists are left alone and reported as unchanged: the starter set then adds
        the entries a base lacks without overwriting the city's edited answers or retired entries.

        NOTE: each row is its own transaction. When another writer changes an entry during the import
        (KnowledgeVersionConflictError) or DynamoDB fails, the rows before it stay written; running the
        same import again completes it, because unchanged rows are skipped.
        """
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        stored = {entry.entry_id: entry for entry in self.all_entries(consistent=True)}
        for row in rows:
            content = KnowledgeContent.model_validate(row.model_dump(include=set(CONTENT_FIELDS)))
            current = stored.get(row.entry_id)
            if current is not None and only_missing:
                unchanged.append(row.entry_id)
                continue
            if current is not None and "status" not in row.model_fields_set:
                content = content.model_copy(update={"status": current.status})
            if current is None:
                self.create(content, actor, entry_id=row.entry_id, example=row.example)
                created.append(row.entry_id)
            elif not changed_fields(current, content) and current.example == row.example:
                unchanged.append(row.entry_id)
            else:
                self._replace(current, content, current.version, actor, row.example)
                updated.append(row.entry_id)
        logger.info(
            "knowledge import applied",
            extra={
                "created_count": len(created),
                "updated_count": len(updated),
                "unchanged_count": len(unchanged),
            },
        )
        return ImportResult(created=created, updated=updated, unchanged=unchanged)

    def _commit(
        self,
        entry: KnowledgeEntry,
        expected_version: int | None,
        action: Literal["created", "updated", "retired"],
        changes: dict[str, dict[str, Any]],
    ) -> None:
        put: dict[str, Any] = {"TableName": self.table.name, "Item": _entry_item(entry)}
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            put["ConditionExpression"] = "version = :expected"
            put["ExpressionAttributeValues"] = {":expected": expected_version}
        audit = {
            "PK": KNOWLEDGE_PK,
            "SK": knowledge_audit_sk(entry.entry_id, entry.version),
            "item_type": "knowledge_audit",
            "entry_id": entry.entry_id,
            "action": action,
            "actor": entry.updated_by,
            "at": entry.updated_at,
            "version": entry.version,
            "changes": changes,
        }
        audit_put = {
            "TableName": self.table.name,
            "Item": audit,
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        try:
            self.client.transact_write_items(TransactItems=[{"Put": put}, {"Put": audit_put}])
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            reasons = [reason.get("Code", "None") for reason in err.response.get("CancellationReasons", [])]
            if code == "TransactionCanceledException" and reasons[:1] == ["ConditionalCheckFailed"]:
                if expected_version is None:
                    raise KnowledgeEntryExistsError(entry.entry_id) from err
                current = self.get(entry.entry_id)
                raise KnowledgeVersionConflictError(
                    entry.entry_id, expected_version, current.version if current else None
                ) from err
            if code == "TransactionCanceledException" and "TransactionConflict" in reasons:
                raise KnowledgeVersionConflictError(entry.entry_id, expected_version or 0, None) from err
            raise KnowledgeStoreError(
                f"DynamoDB rejected the knowledge write with {code}: {reasons}"
            ) from err


# -- import files -----------------------------------------------------------------------------------

CSV_LIST_SEPARATOR = "|"


def _csv_row(record: dict[str, str | None]) -> dict[str, Any]:
    """Turn one CSV record into row fields: lists are `|`-separated, empty cells are absent."""
    row: dict[str, Any] = {}
    for key, raw in record.items():
        if key is None:
            row["__extra__"] = raw
            continue
        value = (raw or "").strip()
        if key in {"keywords", "synonyms"}:
            row[key] = [part for part in value.split(CSV_LIST_SEPARATOR) if part.strip()]
        elif key == "example":
            row[key] = value.lower() in {"true", "1", "yes", "是"}
        elif value:
            row[key] = value
    return row


def parse_import_text(text: str) -> list[dict[str, Any]]:
    """Parse an import document: a JSON array of objects, or CSV with a header row.

    Returns the raw rows; `validate_rows` checks them. Raises KnowledgeImportError (row 0) when the
    document is neither.
    """
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise KnowledgeImportError([RowError(0, "empty")])
    if stripped.startswith(("[", "{")):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as err:
            position = (("line", str(err.lineno)), ("column", str(err.colno)))
            raise KnowledgeImportError([RowError(0, "json_syntax", position)]) from err
        if not isinstance(document, list):
            raise KnowledgeImportError([RowError(0, "json_not_array")])
        return document
    reader = csv.DictReader(io.StringIO(stripped))
    if not reader.fieldnames or "entry_id" not in reader.fieldnames:
        raise KnowledgeImportError([RowError(0, "csv_header")])
    return [_csv_row(record) for record in reader]


def _invalid_fields(err: ValidationError) -> str:
    return "、".join(sorted({".".join(str(part) for part in item["loc"]) or "row" for item in err.errors()}))


def validate_rows(raw_rows: list[Any], config: WorkflowConfig) -> list[KnowledgeImportRow]:
    """Check every row; raises KnowledgeImportError naming every invalid row, so nothing is half-written."""
    rows: list[KnowledgeImportRow] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_rows, start=1):
        if not isinstance(raw, dict):
            errors.append(RowError(number, "not_object"))
            continue
        if "__extra__" in raw:
            errors.append(RowError(number, "extra_cells"))
            continue
        try:
            row = KnowledgeImportRow.model_validate(raw)
        except ValidationError as err:
            errors.append(RowError(number, "fields", (("fields", _invalid_fields(err)),)))
            continue
        unknown = row.unknown_codes(config)
        if unknown:
            errors.append(RowError(number, "unknown_codes", (("codes", "、".join(unknown)),)))
        elif row.entry_id in seen:
            errors.append(RowError(number, "duplicate_id", (("entry_id", row.entry_id),)))
        else:
            rows.append(row)
        seen.add(row.entry_id)
    if not raw_rows:
        errors.append(RowError(0, "no_rows"))
    if errors:
        raise KnowledgeImportError(errors)
    return rows


def starter_rows(config: WorkflowConfig) -> list[KnowledgeImportRow]:
    """Return the shipped starter entries (knowledge_base_starter.json), checked like an import."""
    return validate_rows(json.loads(STARTER_FILE.read_text(encoding="utf-8")), config)


# -- cached reads for ticket-write ------------------------------------------------------------------


class _EntryCache:
    """The knowledge base of each table as last read, with the monotonic time of the read."""

    def __init__(self) -> None:
        self._reads: dict[str, tuple[float, list[KnowledgeEntry]]] = {}

    def entries(self, repository: KnowledgeRepository) -> list[KnowledgeEntry]:
        name = str(repository.table.name)
        now = time.monotonic()
        hit = self._reads.get(name)
        if hit is None or now - hit[0] > CACHE_SECONDS:
            hit = (now, repository.all_entries())
            self._reads[name] = hit
        return hit[1]

    def cache_clear(self) -> None:
        """Forget every read (the tests' cold-start loader calls this like functools' caches)."""
        self._reads.clear()


_cache = _EntryCache()


def cached_active_entries(repository: KnowledgeRepository, day: date) -> list[KnowledgeEntry]:
    """Return the entries active and valid on `day`, querying the table at most every CACHE_SECONDS."""
    return [
        entry for entry in _cache.entries(repository) if entry.status == "active" and entry.is_valid_on(day)
    ]


def clear_cache() -> None:
    _cache.cache_clear()


def china_today() -> date:
    return clock.china_datetime(clock.now()).date()
