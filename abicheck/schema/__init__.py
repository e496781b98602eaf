"""JSON Schemas of abicheck's machine-readable output, shipped inside the package.

``report.schema.json`` describes ``abicheck check --format json`` (version 1); consumers
can validate against it without a network fetch::

    from abicheck.schema import report_schema
    jsonschema.validate(doc, report_schema())
"""

from __future__ import annotations

import json
import os
from typing import Any

REPORT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.schema.json")


def report_schema() -> dict[str, Any]:
    with open(REPORT_SCHEMA, encoding="utf-8") as f:
        return json.load(f)
