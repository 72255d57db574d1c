"""The published JSON Schema of ``events.v1`` (``docs/event.schema.json``), generated from code.

The pydantic model below exists only to export the schema: validation itself is
:func:`app.contracts.events.parse_event`, which is stricter than JSON Schema can say (a JSON
Schema ``integer`` also accepts ``1.0``; ``date-time`` formats are not asserted by default;
non-finite numbers are not JSON at all). Regenerate with::

    python -m app.contracts.schema            # writes docs/event.schema.json
    python -m app.contracts.schema --check    # exit 1 if the committed file is stale

>>> s = event_json_schema()
>>> s["required"][:3]
['event_id', 'event_type', 'event_time']
>>> s["properties"]["country"]["pattern"]
'^[A-Z]{2}$'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.contracts.events import (
    MAX_EVENT_ID_CHARS,
    MAX_EVENT_TIME_MS,
    MAX_FEATURES,
    MAX_ID_CHARS,
    REQUIRED_FIELDS,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "event.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
EpochMs = Annotated[int, Field(ge=0, le=MAX_EVENT_TIME_MS, description="ms since the epoch (UTC)")]
Rfc3339 = Annotated[
    str,
    Field(
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 date-time with Z or +-hh:mm offset; fraction truncated to ms",
    ),
]

_CLICKS_NEED_IMPRESSION = {
    "if": {"properties": {"event_type": {"enum": ["click", "purchase"]}}, "required": ["event_type"]},
    "then": {"required": ["impression_id"], "properties": {"impression_id": {"type": "string"}}},
}


class EventSchema(BaseModel):
    """One events.v1 message: a UTF-8 JSON object, Kafka key = user_id. Unknown fields are ignored."""

    model_config = ConfigDict(
        title="events.v1",
        extra="allow",  # unknown fields are ignored, not refused
        json_schema_extra={"$schema": SCHEMA_DIALECT, "allOf": [_CLICKS_NEED_IMPRESSION]},
    )

    event_id: Annotated[
        str, Field(min_length=1, max_length=MAX_EVENT_ID_CHARS, description="unique; duplicates are dropped")
    ]
    event_type: Literal["impression", "click", "purchase"]
    event_time: EpochMs | Rfc3339 = Field(description="event time drives every window")
    user_id: Id
    session_id: Id
    item_id: Id
    category: Id
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    device: Literal["mobile", "desktop", "tablet"]
    price: Annotated[float, Field(ge=0, allow_inf_nan=False, description="finite")]
    impression_id: Id | None = Field(
        default=None, description="required on click and purchase: the impression it answers"
    )
    features: Annotated[dict[str, float], Field(max_length=MAX_FEATURES)] | None = Field(
        default=None, description="string -> finite number; absent or null = none"
    )


def event_json_schema() -> dict[str, Any]:
    """The schema as a dict, ``required`` in the contract's check order."""
    schema = EventSchema.model_json_schema()
    assert sorted(schema["required"]) == sorted(REQUIRED_FIELDS), "schema and contract disagree"
    schema["required"] = list(REQUIRED_FIELDS)
    # Identification first, for people reading the file.
    head = {k: schema.pop(k) for k in ("$schema", "title", "description", "type")}
    return head | schema


def render() -> str:
    """The exact text of ``docs/event.schema.json`` (stable: sorted by pydantic's field order)."""
    return json.dumps(event_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path = SCHEMA_PATH) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def is_fresh(path: Path = SCHEMA_PATH) -> bool:
    path = Path(path)
    return path.exists() and path.read_text(encoding="utf-8") == render()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--check":
        target = Path(args[1]) if len(args) > 1 else SCHEMA_PATH
        if is_fresh(target):
            return 0
        print(f"{target} is stale: run python -m app.contracts.schema", file=sys.stderr)
        return 1
    print(write(Path(args[0]) if args else SCHEMA_PATH))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
