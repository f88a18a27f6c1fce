"""Key layout of the single DynamoDB table (see docs/data-model.md for the access patterns).

Every item has `PK` and `SK`. Ticket items also carry the attributes of three global secondary
indexes: GSI1 (`StatusIndex`: status, then deadline), GSI2 (`CitizenIndex`: OpenID, then creation
time) and GSI3 (`DepartmentIndex`: department, then creation time).
"""

from __future__ import annotations

TICKET_SK = "TICKET"
CITIZEN_SK = "PROFILE"
COUNTER_SK = "COUNTER"
PUSH_SK = "PUSH"

STATUS_INDEX = "StatusIndex"
CITIZEN_INDEX = "CitizenIndex"
DEPARTMENT_INDEX = "DepartmentIndex"


def ticket_pk(ticket_id: str) -> str:
    return f"TICKET#{ticket_id}"


def message_sk(create_time: int, dedup_hash: str) -> str:
    """Sort key of a message inside its ticket: ordered by CreateTime, unique by the push's dedup hash."""
    return f"MSG#{create_time:010d}#{dedup_hash[:16]}"


def history_sk(at_iso: str, sequence: int) -> str:
    """Sort key of one append-only history entry; `at_iso` is UTC ISO 8601 so entries sort by time."""
    return f"HIST#{at_iso}#{sequence:06d}"


def citizen_pk(open_id: str) -> str:
    return f"CITIZEN#{open_id}"


def dedup_pk(dedup_hash: str) -> str:
    """Key of the marker that makes one push land in exactly one ticket."""
    return f"PUSH#{dedup_hash}"


def counter_pk(prefix: str, day: str) -> str:
    """Key of the per-day ticket-number counter; `day` is YYYYMMDD in China Standard Time."""
    return f"COUNTER#{prefix}{day}"


def outbox_pk(producer: str) -> str:
    """Key of a producer's outbox: events committed with a write but not yet published (SK = ticket id)."""
    return f"OUTBOX#{producer}"


def notice_pk(notice_id: str) -> str:
    return f"NOTICE#{notice_id}"


def token_pk(app_id: str) -> str:
    return f"WECHAT_TOKEN#{app_id}"


KNOWLEDGE_PK = "KB"


def knowledge_entry_sk(entry_id: str) -> str:
    """Sort key of one knowledge entry; every entry shares `PK = KB`, so one Query loads the base."""
    return f"ENTRY#{entry_id}"


def knowledge_audit_prefix(entry_id: str) -> str:
    return f"AUDIT#{entry_id}#"


def knowledge_audit_sk(entry_id: str, version: int) -> str:
    """Sort key of the audit record of the change that made `version` of an entry, ordered by version."""
    return f"{knowledge_audit_prefix(entry_id)}{version:06d}"


def status_gsi_pk(status: str) -> str:
    return f"STATUS#{status}"


def citizen_gsi_pk(open_id: str) -> str:
    return f"CITIZEN#{open_id}"


def department_gsi_pk(department: str) -> str:
    return f"DEPT#{department}"
