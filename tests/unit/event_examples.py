"""The committed example events (schemas/examples) and variants of them, shared by the
event-model and the schema tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
EXAMPLES = SCHEMAS / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
EXAMPLE_IDS = [p.stem for p in EXAMPLE_FILES]
DROP = object()  # marks a field to remove in a variant


def example(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{stem}.json").read_text(encoding="utf-8"))
    return data


def variant(stem: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of an example with fields changed: ``payload__entity__action_name="x"``
    sets ``record["payload"]["entity"]["action_name"]``; the value ``DROP`` removes it."""
    record = copy.deepcopy(example(stem))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = record
        for part in parents:
            node = node[part]
        if value is DROP:
            del node[leaf]
        else:
            node[leaf] = value
    return record
