"""Write the staff API's OpenAPI document to openapi.json at the repository root.

Run from the repository root: `.venv/bin/python -m functions.staff_api.export_openapi`.
The document comes from the routes and pydantic models in app.py; no AWS call is made.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_FILE = ROOT / "openapi.json"


def openapi_document() -> str:
    """Return the OpenAPI document of app.py as formatted JSON text with a trailing newline."""
    sys.path.insert(0, str(ROOT / "layers" / "shared"))
    # The route modules next to app.py are imported by name, as Lambda does with the code folder.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    # boto3 needs a region to build the module-level clients; building them sends nothing.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from functions.staff_api.app import app

    document = app.get_openapi_json_schema(
        title="WeChat 12345 intake staff API",
        version="1.0.0",
        summary="Tickets of the WeChat channel of the 12345 service platform, for staff and the platform",
        description=(
            "Every request is signed with AWS SigV4 (API Gateway AWS_IAM authorization). "
            "Errors are {code, message} with the message in Simplified Chinese."
        ),
    )
    schema = json.loads(document)
    # Powertools documents its default 422 validation answer; app.py answers 400 instead.
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OPENAPI_FILE.write_text(openapi_document(), encoding="utf-8")
    print(f"wrote {OPENAPI_FILE}")
