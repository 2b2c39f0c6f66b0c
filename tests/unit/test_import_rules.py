"""The package map's import rules (docs/design.md, "Packages"), checked on the source: every
``import`` of every module of ``src/mlineage``, at the top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlineage

ROOT = Path(mlineage.__file__).parent

# the packages at the bottom import only these...
ONLY: dict[str, set[str]] = {
    "errors": set(),
    "arns": set(),
    "_gc": set(),
    "failpoints": {"errors"},
    "settings": {"arns", "errors"},
}
# ... and the others never these
NEVER: dict[str, set[str]] = {
    "events": {"log", "tracker", "projection", "query", "recorder", "server", "cli", "ops"},
    "log": {"events", "tracker", "projection", "query", "recorder", "server", "cli", "ops"},
    "tracker": {"projection", "query", "recorder", "server", "cli", "ops", "pipeline"},
    "projection": {"tracker", "query", "recorder", "server", "cli", "ops", "pipeline"},
    "recorder": {"tracker", "projection", "query", "server", "cli", "ops", "pipeline"},
    "pipeline": {"query", "server", "cli"},
    "ops": {"query", "server", "cli"},
    "query": {"tracker", "recorder", "server", "cli"},
    "server": {"cli"},
}
THIRD_PARTY_NEVER: dict[str, set[str]] = {
    # the CLI reads through LineageStore and prints through cli/render.py: no SQL of its own
    "cli": {"duckdb"},
    # the log carries bytes: no models, no DuckDB
    "log": {"duckdb", "pydantic"},
    "events": {"duckdb"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports, as dotted names (``from mlineage import x`` counts as
    ``mlineage.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "mlineage":
                found.update(f"mlineage.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _packages() -> set[str]:
    return {_package(p) for p in _modules()}


def _broken(package: str, imports: set[str]) -> list[str]:
    """The imports of a module of ``package`` that break its rules."""
    if package in ONLY:
        banned = _packages() - {package} - ONLY[package]
    else:
        banned = NEVER.get(package, set())
    out = []
    for name in sorted(imports):
        parts = name.split(".")
        if parts[0] == "mlineage" and len(parts) > 1 and parts[1] in banned:
            out.append(f"{name} ({package} must not import {parts[1]})")
        if parts[0] in THIRD_PARTY_NEVER.get(package, set()):
            out.append(f"{name} ({package} must not import {parts[0]})")
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_what_its_package_may(path: Path) -> None:
    assert _broken(_package(path), _imports(path)) == []


def test_nothing_but_the_cli_imports_the_cli() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if _package(p) != "cli" and any(n.startswith("mlineage.cli") for n in _imports(p))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("log", "mlineage.events.models"),
        ("cli", "duckdb"),
        ("recorder", "mlineage.projection.project"),
        ("arns", "mlineage.errors"),
        ("settings", "mlineage.log.base"),
        ("query", "mlineage.server.app"),
    ],
)
def test_the_rules_catch_a_bad_import(package: str, name: str) -> None:
    assert _broken(package, {name}), name
    assert _broken(package, {"json", "mlineage"}) == []  # the standard library, the root
