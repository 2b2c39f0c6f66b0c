"""Errors of the query layer."""

from __future__ import annotations

from mlineage.errors import MlineageError


class QueryError(MlineageError):
    """A query is malformed: a bad parameter, filter, sort or paging token."""
