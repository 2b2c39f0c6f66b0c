"""QueryLineage with SageMaker's semantics, over an in-memory adjacency index of the
projection's live graph (``lineage_vertices`` / ``lineage_edges``).

Semantics (reference/sagemaker-lineage.md, plus the decisions written in docs/query.md):

- ``Descendants`` follows associations source -> destination, ``Ascendants`` backwards,
  ``Both`` both ways from every vertex visited (undirected reachability).
- ``max_depth`` counts associations from the start ARNs; a vertex is reached at the least
  depth any start reaches it. The traversal follows every visible edge leaving a vertex
  reached at depth < ``max_depth``. ``truncated_by_depth`` says a vertex at ``max_depth`` had
  an edge leading on to a vertex not reached, so a deeper query would return more.
- The start entities are vertices like any other (SageMaker returns them: the SDK's own
  integration tests expect the start among the vertices, and its visualizer needs both
  ends of every edge); filters apply to them as to any vertex.
- Filters select the *matching* vertices (types, lineage types, created/modified
  before/after — strict comparisons — and properties, where any one pair matching is
  enough).
- Without edges: the matching vertices. With edges and filters: also every vertex on a
  shortest path from a start to a matching vertex (the start included), and the edges
  along those paths (each edge once). With edges and no filters: everything reached and
  every edge traversed.
- Paging: vertices are ordered by (depth, ARN), so the starts (depth 0) come first;
  ``max_results`` counts vertices; an edge is returned with the page of its later endpoint.
  Pages never repeat a vertex or an edge and together equal the unpaged answer. The token
  carries the offset and a digest of the query, so it cannot be used with another query.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb

from mlineage._gc import gc_paused
from mlineage.query.errors import QueryError  # re-exported: raised by query_lineage
from mlineage.query.paging import decode_token, encode_token

Direction = Literal["Both", "Ascendants", "Descendants"]
DIRECTIONS: tuple[str, ...] = ("Both", "Ascendants", "Descendants")
LINEAGE_TYPES = ("TrialComponent", "Artifact", "Context", "Action")
MAX_DEPTH = 100


@dataclass(frozen=True)
class LineageFilter:
    """Which vertices a query returns (all given conditions must hold)."""

    types: Sequence[str] | None = None
    lineage_types: Sequence[str] | None = None
    created_before: datetime | None = None
    created_after: datetime | None = None
    modified_before: datetime | None = None
    modified_after: datetime | None = None
    properties: dict[str, str] | None = None

    def __post_init__(self) -> None:
        # a bare string is one type, not a set of characters; naive times are UTC
        for name in ("types", "lineage_types"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, [value])
        for name in ("created_before", "created_after", "modified_before", "modified_after"):
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))

    def is_empty(self) -> bool:
        return all(v in (None, [], (), {}) for v in (
            self.types, self.lineage_types, self.created_before, self.created_after,
            self.modified_before, self.modified_after, self.properties))

    def digest(self) -> str:
        return json.dumps({
            "t": sorted(self.types or []), "l": sorted(self.lineage_types or []),
            "cb": _iso(self.created_before), "ca": _iso(self.created_after),
            "mb": _iso(self.modified_before), "ma": _iso(self.modified_after),
            "p": sorted((self.properties or {}).items()),
        }, sort_keys=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Vertex:
    arn: str
    type: str | None
    lineage_type: str


@dataclass(frozen=True)
class Edge:
    source_arn: str
    destination_arn: str
    association_type: str | None


@dataclass
class LineageResult:
    vertices: list[Vertex] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    next_token: str | None = None
    truncated_by_depth: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Vertices": [{"Arn": v.arn, "Type": v.type, "LineageType": v.lineage_type}
                         for v in self.vertices],
            "Edges": [{"SourceArn": e.source_arn, "DestinationArn": e.destination_arn,
                       "AssociationType": e.association_type} for e in self.edges],
            "TruncatedByDepth": self.truncated_by_depth,
        }
        if self.next_token is not None:
            out["NextToken"] = self.next_token
        return out


class LineageGraph:
    """The live lineage graph, with ARNs interned as integers and adjacency lists both ways.

    Built from one snapshot of the projection; rebuild it (``LineageGraph.load``) to see
    newer data.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.arns: list[str] = []
        self.lineage_type: list[str | None] = []
        self.type: list[str | None] = []
        # microseconds since the epoch (UTC): comparing ints, and not building a datetime
        # per vertex, makes loading the index ~2x faster at 100k jobs
        self.created: list[int | None] = []
        self.modified: list[int | None] = []
        self.account: list[str | None] = []
        self.out: list[list[int]] = []   # vertex -> edge ids leaving it
        self.inc: list[list[int]] = []   # vertex -> edge ids entering it
        self.edge_src: list[int] = []
        self.edge_dst: list[int] = []
        self.edge_type: list[str | None] = []

    def _vid(self, arn: str) -> int:
        vid = self.ids.get(arn)
        if vid is None:
            vid = len(self.arns)
            self.ids[arn] = vid
            self.arns.append(arn)
            self.lineage_type.append(None)
            self.type.append(None)
            self.created.append(None)
            self.modified.append(None)
            self.account.append(None)
            self.out.append([])
            self.inc.append([])
        return vid

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, *, vertices_sql: str = "lineage_vertices",
             edges_sql: str = "lineage_edges") -> LineageGraph:
        # the index is a few million small lists and ints with no cycles: with the cyclic
        # GC running, its collections (re-scanning the growing index) were half the time
        with gc_paused():
            return cls._load(con, vertices_sql, edges_sql)

    @classmethod
    def _load(cls, con: duckdb.DuckDBPyConnection, vertices_sql: str,
              edges_sql: str) -> LineageGraph:
        g = cls()
        cur = con.execute(f"SELECT arn, lineage_type, type, epoch_us(created_at), "
                          f"epoch_us(modified_at), account_id FROM {vertices_sql}")
        for arn, lineage_type, typ, created, modified, account in cur.fetchall():
            vid = g._vid(arn)
            g.lineage_type[vid] = lineage_type
            g.type[vid] = typ
            g.created[vid] = created
            g.modified[vid] = modified
            g.account[vid] = account
        cur = con.execute(f"SELECT source_arn, destination_arn, association_type FROM {edges_sql}"
                          " ORDER BY source_arn, destination_arn")
        for src, dst, assoc in cur.fetchall():
            s, d = g._vid(src), g._vid(dst)
            eid = len(g.edge_src)
            g.edge_src.append(s)
            g.edge_dst.append(d)
            g.edge_type.append(assoc)
            g.out[s].append(eid)
            g.inc[d].append(eid)
        return g

    def is_vertex(self, vid: int) -> bool:
        return self.lineage_type[vid] is not None


def query_lineage(
    graph: LineageGraph,
    start_arns: Iterable[str],
    *,
    direction: str = "Both",
    include_edges: bool = True,
    filters: LineageFilter | None = None,
    max_depth: int = 10,
    max_results: int | None = None,
    next_token: str | None = None,
    properties_of: Any = None,
) -> LineageResult:
    """Run QueryLineage on ``graph``. ``properties_of(arns) -> {arn: {k: v}}`` is called only
    when a properties filter is given (properties stay in DuckDB, not in the index)."""
    starts_list = list(dict.fromkeys(start_arns))
    if not starts_list:
        raise QueryError("StartArns must name at least one ARN")
    if direction not in DIRECTIONS:
        raise QueryError(f"Direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not 0 <= max_depth <= MAX_DEPTH:
        raise QueryError(f"MaxDepth must be between 0 and {MAX_DEPTH}, got {max_depth}")
    if max_results is not None and max_results < 1:
        raise QueryError(f"MaxResults must be at least 1, got {max_results}")
    filters = filters or LineageFilter()
    for lt in filters.lineage_types or []:
        if lt not in LINEAGE_TYPES:
            raise QueryError(f"LineageTypes must be among {', '.join(LINEAGE_TYPES)}, got {lt!r}")
    digest = hashlib.sha256(json.dumps([
        sorted(starts_list), direction, include_edges, filters.digest(), max_depth, max_results,
    ]).encode()).hexdigest()[:24]
    offset = decode_token(next_token, digest) if next_token else 0

    starts = [graph.ids[a] for a in starts_list if a in graph.ids and graph.is_vertex(graph.ids[a])]
    forward = direction in ("Both", "Descendants")
    backward = direction in ("Both", "Ascendants")

    # breadth-first: depth of every reached vertex, and the edges followed (eid, from, to)
    depth: dict[int, int] = dict.fromkeys(starts, 0)
    followed: list[tuple[int, int, int]] = []
    queue = deque(starts)
    truncated = False
    while queue:
        u = queue.popleft()
        du = depth[u]
        steps: list[tuple[int, int]] = []
        if forward:
            steps.extend((eid, graph.edge_dst[eid]) for eid in graph.out[u])
        if backward:
            steps.extend((eid, graph.edge_src[eid]) for eid in graph.inc[u])
        if du >= max_depth:
            if any(v not in depth and graph.is_vertex(v) for _, v in steps):
                truncated = True
            continue
        for eid, v in steps:
            if not graph.is_vertex(v):
                continue
            followed.append((eid, u, v))
            if v not in depth:
                depth[v] = du + 1
                queue.append(v)

    reached = list(depth)  # the starts too, at depth 0
    matching = _matching(graph, reached, filters, properties_of)
    if include_edges and not filters.is_empty():
        # vertices on a shortest path from a start to a matching vertex: walk back along the
        # outward steps only (depth + 1), so dead ends beside a path are not taken in
        back: dict[int, list[int]] = {}
        for _, u, v in followed:
            if depth[v] == depth[u] + 1:
                back.setdefault(v, []).append(u)
        relevant = set(matching)
        stack = list(matching)
        while stack:
            v = stack.pop()
            for u in back.get(v, ()):
                if u not in relevant:
                    relevant.add(u)
                    stack.append(u)
        chosen = relevant
        edge_ids = {eid for eid, u, v in followed
                    if v in relevant and depth[v] == depth[u] + 1}
    else:
        chosen = set(matching)
        edge_ids = {eid for eid, _, _ in followed} if include_edges else set()

    order = sorted(chosen, key=lambda v: (depth[v], graph.arns[v]))
    position = {v: i for i, v in enumerate(order)}
    end = len(order) if max_results is None else min(offset + max_results, len(order))
    page = order[offset:end]
    result = LineageResult(
        vertices=[Vertex(graph.arns[v], graph.type[v], graph.lineage_type[v] or "")
                  for v in page],
        truncated_by_depth=truncated,
    )
    if include_edges:
        def page_of(eid: int) -> int:
            later = max(position.get(graph.edge_src[eid], -1),
                        position.get(graph.edge_dst[eid], -1))
            return max(later, 0)

        mine = sorted((e for e in edge_ids if offset <= page_of(e) < end or
                       (offset == 0 and not order)),
                      key=lambda e: (graph.arns[graph.edge_src[e]], graph.arns[graph.edge_dst[e]]))
        result.edges = [Edge(graph.arns[graph.edge_src[e]], graph.arns[graph.edge_dst[e]],
                             graph.edge_type[e]) for e in mine]
    if end < len(order):
        result.next_token = encode_token(end, digest)
    return result


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(value: datetime | None) -> int | None:
    """Microseconds since the epoch, exactly (the filter's times are UTC-aware)."""
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def _matching(graph: LineageGraph, reached: list[int], f: LineageFilter,
              properties_of: Any) -> list[int]:
    if f.is_empty():
        return reached
    out = []
    types = set(f.types or [])
    lineage_types = set(f.lineage_types or [])
    created_before, created_after = _epoch_us(f.created_before), _epoch_us(f.created_after)
    modified_before, modified_after = _epoch_us(f.modified_before), _epoch_us(f.modified_after)
    for v in reached:
        if types and graph.type[v] not in types:
            continue
        if lineage_types and graph.lineage_type[v] not in lineage_types:
            continue
        c, m = graph.created[v], graph.modified[v]
        if created_before is not None and not (c is not None and c < created_before):
            continue
        if created_after is not None and not (c is not None and c > created_after):
            continue
        if modified_before is not None and not (m is not None and m < modified_before):
            continue
        if modified_after is not None and not (m is not None and m > modified_after):
            continue
        out.append(v)
    if f.properties:
        props = properties_of([graph.arns[v] for v in out]) if properties_of else {}
        wanted = f.properties.items()
        out = [v for v in out
               if any(props.get(graph.arns[v], {}).get(k) == val for k, val in wanted)]
    return out
