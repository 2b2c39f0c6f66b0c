"""Requests and responses in SageMaker's shapes, from botocore's own service model.

The input of every operation is checked against the model the clients are generated from:
required members, types, lengths and counts, ranges, enums and patterns, with AWS's
wording (``1 validation error detected: Value 'x' at 'artifactName' failed to satisfy
constraint: ...``). Timestamps arrive as epoch seconds (boto3's JSON protocol) or ISO 8601
strings and become aware datetimes; responses carry them back as epoch seconds.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from mlineage.errors import MlineageError

_RELAXED_MAX = {"MaxResults", "MaxDepth", "StartArns"}  # --extended-limits lifts these caps


class RequestValidationError(MlineageError):
    """The request does not fit the operation's input shape (``problems``: AWS's phrasing)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"{count} validation error{'s' if count > 1 else ''} detected: "
        super().__init__(head + "; ".join(problems))


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


def operation(name: str) -> OperationModel | None:
    try:
        return service_model().operation_model(name)
    except Exception:
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 200 else text[:197] + "..."


_PROPERTY = re.compile(r"\\p\{(\w+)\}")
_POSIX = {"Alnum": "a-zA-Z0-9", "Alpha": "a-zA-Z", "Digit": "0-9", "Upper": "A-Z"}
_POSIX["Lower"] = "a-z"


@functools.cache
def _category(name: str) -> str:
    """Java's ``\\p{X}`` as the inside of a Python character class: a POSIX class, or the
    code points of the Unicode general categories starting with ``X`` (L, M, N, P, S, Z)."""
    if name in _POSIX:
        return _POSIX[name]
    if len(name) != 1:
        raise re.error(f"unsupported property class {name!r}")
    points = [i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i))[0] == name]
    if not points:
        raise re.error(f"unsupported property class {name!r}")
    ranges: list[str] = []
    start = prev = points[0]
    for point in [*points[1:], -2]:
        if point != prev + 1:
            ranges.append(f"\\U{start:08x}" + (f"-\\U{prev:08x}" if prev != start else ""))
            start = point
        prev = point
    return "".join(ranges)


def _java(pattern: str) -> str:
    """A botocore (Java) pattern with its ``\\p{X}`` classes spelled for Python's ``re``."""
    out, depth, i = [], 0, 0
    while i < len(pattern):
        match = _PROPERTY.match(pattern, i)
        if match:
            inner = _category(match[1])
            out.append(inner if depth else f"[{inner}]")
            i = match.end()
            continue
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(_java(pattern) if "\\p{" in pattern else pattern)
    except re.error:  # another Java-only construct: leave it to the event models
        return None


def parse(op: OperationModel, body: Any, *, extended_limits: bool = False) -> dict[str, Any]:
    """Check ``body`` against the operation's input shape; return it with timestamps as
    datetimes. Raises :class:`RequestValidationError` listing every problem."""
    problems: list[str] = []
    shape = op.input_shape
    if shape is None:
        return {}
    if not isinstance(body, dict):
        raise RequestValidationError(["the request body must be a JSON object"])
    out = _value(shape, body, "", problems, extended_limits)
    if problems:
        raise RequestValidationError(problems)
    return out if isinstance(out, dict) else {}


def _value(shape: Shape, value: Any, path: str, problems: list[str], extended: bool) -> Any:
    meta = shape.metadata
    where = path or "request"
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            _mismatch(problems, value, where, "a structure")
            return value
        members = shape.members
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy "
                    "constraint: Member must not be null"
                )
        for name, item in value.items():
            if name not in members:
                problems.append(
                    f"Unknown parameter '{_join(path, name)}': it is not a member of {shape.name}"
                )
                continue
            if item is None:
                continue
            out[name] = _value(
                members[name], item, _join(path, name), problems, extended and name in _RELAXED_MAX
            )
        return out
    if kind == "list":
        if not isinstance(value, list):
            _mismatch(problems, value, where, "a list")
            return value
        _bounds(len(value), _show(value), meta, where, problems, "have length", extended)
        member = shape.member
        return [
            _value(member, v, f"{where}.{i + 1}.member", problems, extended)
            for i, v in enumerate(value)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            _mismatch(problems, value, where, "a map")
            return value
        _bounds(len(value), _show(value), meta, where, problems, "have length", extended)
        key_shape, value_shape = shape.key, shape.value
        return {
            _value(key_shape, k, f"{where}.key", problems, extended): _value(
                value_shape, v, f"{where}.value", problems, extended
            )
            for k, v in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            _mismatch(problems, value, where, "a string")
            return value
        if not value.isascii() and not _encodable(value):
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must be "
                "valid Unicode (it holds a lone UTF-16 surrogate)"
            )
            return value
        _bounds(len(value), _show(value), meta, where, problems, "have length", extended)
        enum = shape.enum
        if enum and value not in enum:
            problems.append(
                f"Value {_show(value)} at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = meta.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):  # Java matches()
            problems.append(
                f"Value {_show(value)} at '{where}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            _mismatch(problems, value, where, "an integer")
            return value
        _bounds(value, f"'{value}'", meta, where, problems, "have value", extended)
        return value
    if kind in ("double", "float"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            _mismatch(problems, value, where, "a finite number")
            return value
        _bounds(value, f"'{value}'", meta, where, problems, "have value", extended)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            _mismatch(problems, value, where, "a boolean")
        return value
    if kind == "timestamp":
        parsed = _timestamp(value)
        if parsed is None:
            _mismatch(problems, value, where, "a timestamp (epoch seconds or ISO 8601)")
        return parsed
    return value


def _mismatch(problems: list[str], value: Any, where: str, what: str) -> None:
    problems.append(
        f"Value {_show(value)} at '{where}' failed to satisfy constraint: Member must be {what}"
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{_camel(name)}" if path else _camel(name)


def _bounds(
    n: float,
    shown: str,
    meta: dict[str, Any],
    where: str,
    problems: list[str],
    what: str,
    extended: bool,
) -> None:
    """Check ``n`` (a length or a number, shown to the caller as ``shown``) against the
    shape's min and max; ``extended`` lifts the max."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and n < low:
        problems.append(
            f"Value {shown} at '{where}' failed to satisfy constraint: "
            f"Member must {what} greater than or equal to {low}"
        )
    if high is not None and n > high and not extended:
        problems.append(
            f"Value {shown} at '{where}' failed to satisfy constraint: "
            f"Member must {what} less than or equal to {high}"
        )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:  # at the edges of the calendar the UTC time may fall outside years 1-9999
            return parsed.astimezone(UTC)
        except OverflowError:
            return None
    return None


def _encodable(text: str) -> bool:
    """False for text with a lone surrogate (JSON's \\ud800 escapes decode to one): it has
    no UTF-8 form, so it can be neither stored nor shown."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_json(value: Any) -> Any:
    """A response value as JSON 1.1 carries it: datetimes as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
