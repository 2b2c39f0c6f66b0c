"""JSON Schemas of the events, generated from the models: ``schemas/<EventType>.v1.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from mlineage.events.models import EVENT_TYPES, SCHEMA_VERSION


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per event type and version."""
    docs: dict[str, dict[str, Any]] = {}
    for name, model in sorted(EVENT_TYPES.items()):
        schema = TypeAdapter(model).json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://mlineage.dev/schemas/{name}.v{SCHEMA_VERSION}.json"
        docs[f"{name}.v{SCHEMA_VERSION}.json"] = schema
    return docs


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in schema_documents().items():
        path = out_dir / filename
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
