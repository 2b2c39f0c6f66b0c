"""The ``mlineage`` command, a package of thin commands: each module parses its options,
calls the library (``Recorder``, the services, ``LineageStore``) and prints the answer with
:mod:`mlineage.cli.render`. No SQL here and no DuckDB: every read is a ``LineageStore``
method (docs/design.md has the package map and its import rules)."""

from __future__ import annotations

# importing the command modules registers their commands on the group
from mlineage.cli import admin, publish, read, serve, services
from mlineage.cli.app import cli, main

__all__ = ["admin", "cli", "main", "publish", "read", "serve", "services"]
