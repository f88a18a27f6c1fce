"""Import knowledge entries from a file, or the shipped starter set, into a stack's TicketsTable.

`python -m devstack.ops [--stack-name NAME | --endpoint-url URL] knowledge-import FILE` reads a JSON
array of entries or CSV text with a header row (the format of `POST /knowledge/import`), checks every
row against workflow_config.json, and writes nothing when a row is invalid. It then creates or replaces
each entry by `entry_id` through `intake.knowledge_base.KnowledgeRepository`, so each change gets the
same audit item as a change through the staff API, with the IAM identity of the caller as the actor.
Rows equal to the stored entry write nothing, so importing the same file twice changes nothing. A row
without `status` (a CSV without that column, a JSON object without the key) keeps the stored status,
so it does not reactivate a retired entry. A new entry without `status` is active.

`--starter` imports layers/shared/intake/knowledge_base_starter.json instead of a file, and only
creates the entries whose ids the base lacks: on a live stack it must not overwrite answers the city
has edited or reactivate entries it retired. The local stack (`devstack.runner`) loads the starter set
the same way when it starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from devstack.ops.stack_outputs import StackTarget
from devstack.resources import Stack
from intake.knowledge_base import (
    STARTER_FILE,
    ImportResult,
    KnowledgeRepository,
    parse_import_text,
    validate_rows,
)
from intake.workflow_config import get_workflow_config

logger = logging.getLogger(__name__)

# Actor of the starter entries that the local stack loads at start.
LOCAL_SEED_ACTOR = "devstack-local-seed"


class KnowledgeFileError(ValueError):
    """The import file cannot be read as text."""


def read_import_file(path: Path) -> str:
    """Return the file's text; raises KnowledgeFileError when it is unreadable or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise KnowledgeFileError(f"cannot read {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise KnowledgeFileError(f"{path} is not UTF-8 text; save it as UTF-8 and retry") from err


def import_text(table: Any, text: str, actor: str, only_missing: bool = False) -> ImportResult:
    """Check every row of `text`, then create or replace the entries; raises KnowledgeImportError.

    With `only_missing`, only entries whose ids are not stored are created.
    """
    rows = validate_rows(parse_import_text(text), get_workflow_config())
    return KnowledgeRepository(table).upsert(rows, actor, only_missing=only_missing)


def caller_identity(target: StackTarget) -> str:
    """Return the ARN of the credentials in use, recorded as the actor of every change."""
    return str(target.client("sts").get_caller_identity()["Arn"])


def import_into_stack(target: StackTarget, path: Path | None) -> ImportResult:
    """Import `path` into the target stack's TicketsTable, or, when it is None, the starter entries it lacks."""
    text = STARTER_FILE.read_text(encoding="utf-8") if path is None else read_import_file(path)
    table = target.resource("dynamodb").Table(target.output("TicketsTableName"))
    result = import_text(table, text, caller_identity(target), only_missing=path is None)
    logger.info(
        "knowledge import into %s: %d created, %d updated, %d unchanged",
        target.stack_name,
        len(result.created),
        len(result.updated),
        len(result.unchanged),
    )
    return result


def seed_local_stack(stack: Stack) -> ImportResult | None:
    """Load the starter set into a local stack's TicketsTable (devstack.runner calls this at start).

    Returns None for a template without TicketsTable (the runner's tests use reduced templates).
    """
    if "TicketsTable" not in stack.resources:
        return None
    dynamodb = stack.session.resource("dynamodb", endpoint_url=stack.endpoint_url)
    text = STARTER_FILE.read_text(encoding="utf-8")
    result = import_text(dynamodb.Table(stack.ref("TicketsTable")), text, LOCAL_SEED_ACTOR, only_missing=True)
    logger.info("local stack: %d starter knowledge entries loaded", len(result.created))
    return result
