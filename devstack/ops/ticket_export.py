"""Export the tickets created in a date range (`python -m devstack.ops export`).

Dates are calendar days in China Standard Time, both inclusive, as in the ticket numbers. The export
holds ticket fields only: no message text, no location, and no OpenID unless `include_openid` is
set. A pseudonymized ticket's `open_id` is the HMAC that replaced the OpenID at unsubscribe.
The table has no index by creation time, so the export scans it (paginated).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr

from devstack.ops.stack_outputs import StackTarget

logger = logging.getLogger(__name__)

COLUMNS = (
    "ticket_id",
    "status",
    "appeal_type",
    "department",
    "created_at",
    "submitted_at",
    "deadline",
    "updated_at",
    "message_count",
    "urgent",
    "emergency",
    "rating_score",
    "reopen_count",
    "open_id_pseudonymized",
)
OPENID_COLUMN = "open_id"


def utc_bounds(first_day: date, last_day: date) -> tuple[str, str]:
    """Return `created_at` bounds (start inclusive, end exclusive) of China Standard Time days."""
    from intake import clock

    if last_day < first_day:
        raise ValueError(f"--to {last_day} is before --from {first_day}")
    start = datetime.combine(first_day, time(), tzinfo=clock.CHINA_TZ).timestamp()
    end = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=clock.CHINA_TZ).timestamp()
    return clock.iso_utc(start), clock.iso_utc(end)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def export_row(item: dict[str, Any], include_openid: bool) -> dict[str, Any]:
    row = {column: _plain(item.get(column)) for column in COLUMNS}
    rating = item.get("rating")
    row["rating_score"] = _plain(rating.get("score")) if isinstance(rating, dict) else None
    row["open_id_pseudonymized"] = bool(item.get("open_id_pseudonymized", False))
    if include_openid:
        row[OPENID_COLUMN] = item.get("open_id")
    return row


def export_tickets(
    target: StackTarget, first_day: date, last_day: date, include_openid: bool = False
) -> list[dict[str, Any]]:
    """Return the tickets created from `first_day` to `last_day`, oldest first."""
    start, end = utc_bounds(first_day, last_day)
    table = target.resource("dynamodb").Table(target.output("TicketsTableName"))
    condition = Attr("item_type").eq("ticket") & Attr("created_at").gte(start) & Attr("created_at").lt(end)
    arguments: dict[str, Any] = {"FilterExpression": condition}
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = table.scan(**arguments)
        items += response.get("Items", [])
        pages += 1
        if "LastEvaluatedKey" not in response:
            break
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    rows = sorted(
        (export_row(item, include_openid) for item in items),
        key=lambda row: (row["created_at"] or "", row["ticket_id"]),
    )
    logger.info(
        "export: %d tickets created %s to %s (China Standard Time), %d scan pages, OpenIDs %s",
        len(rows),
        first_day,
        last_day,
        pages,
        "included" if include_openid else "left out",
    )
    return rows


def render(rows: list[dict[str, Any]], output_format: str, include_openid: bool) -> str:
    """Return the rows as CSV (with a header row) or as a JSON array."""
    if output_format == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    columns = [*COLUMNS, OPENID_COLUMN] if include_openid else list(COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
