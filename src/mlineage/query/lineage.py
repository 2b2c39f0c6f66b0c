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

import bisect
import hashlib
import itertools
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlineage._gc import gc_paused
from mlineage.projection.schema import LINEAGE_TYPES
from mlineage.query.errors import QueryError  # re-exported: raised by query_lineage
from mlineage.query.graph import Ints, LineageGraph
from mlineage.query.paging import decode_token, encode_token

__all__ = [
    "DIRECTIONS",
    "LINEAGE_TYPES",
    "MAX_DEPTH",
    "Edge",
    "LineageFilter",
    "LineageGraph",
    "LineageResult",
    "QueryError",
    "Vertex",
    "query_lineage",
]

DIRECTIONS: tuple[str, ...] = ("Both", "Ascendants", "Descendants")
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
        return all(
            v in (None, [], (), {})
            for v in (
                self.types,
                self.lineage_types,
                self.created_before,
                self.created_after,
                self.modified_before,
                self.modified_after,
                self.properties,
            )
        )

    def digest(self) -> str:
        return json.dumps(
            {
                "t": sorted(self.types or []),
                "l": sorted(self.lineage_types or []),
                "cb": _iso(self.created_before),
                "ca": _iso(self.created_after),
                "mb": _iso(self.modified_before),
                "ma": _iso(self.modified_after),
                "p": sorted((self.properties or {}).items()),
            },
            sort_keys=True,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class Vertex(NamedTuple):
    """One vertex of an answer (a named tuple: an answer may hold hundreds of thousands, and
    a frozen dataclass costs ~7x as much to create)."""

    arn: str
    type: str | None
    lineage_type: str


class Edge(NamedTuple):
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
            "Vertices": [
                {"Arn": v.arn, "Type": v.type, "LineageType": v.lineage_type} for v in self.vertices
            ],
            "Edges": [
                {
                    "SourceArn": e.source_arn,
                    "DestinationArn": e.destination_arn,
                    "AssociationType": e.association_type,
                }
                for e in self.edges
            ],
            "TruncatedByDepth": self.truncated_by_depth,
        }
        if self.next_token is not None:
            out["NextToken"] = self.next_token
        return out


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
    visible_accounts: Iterable[str] | None = None,
) -> LineageResult:
    """Run QueryLineage on ``graph``. ``properties_of(arns) -> {arn: {k: v}}`` is called only
    when a properties filter is given (properties stay in DuckDB, not in the index).

    ``visible_accounts``: walk on behalf of a caller who sees only the vertices of these
    accounts (and edges between two of them), following SameAs links between them; None: the
    operator, who sees every vertex and no SameAs link (docs/accounts.md)."""
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
    # what a paging token is bound to (only a paged query makes or takes one)
    paged = max_results is not None or next_token
    digest = (
        hashlib.sha256(
            json.dumps(
                [
                    sorted(starts_list),
                    direction,
                    include_edges,
                    filters.digest(),
                    max_depth,
                    max_results,
                ]
            ).encode()
        ).hexdigest()[:24]
        if paged
        else ""
    )
    offset = decode_token(next_token, digest) if next_token else 0

    # an answer can be hundreds of thousands of small tuples: with the cyclic GC running,
    # its collections (re-scanning them as they are made) took most of the time
    sees = None if visible_accounts is None else graph.account_codes(visible_accounts)
    with gc_paused():
        return _walk(
            graph,
            starts_list,
            direction,
            include_edges,
            filters,
            max_depth,
            max_results,
            offset,
            digest,
            properties_of,
            sees,
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(value: datetime | None) -> int | None:
    """Microseconds since the epoch, exactly (the filter's times are UTC-aware)."""
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


class _Scratch:
    """Per-graph work arrays, reset after each query (only where it wrote), so a query
    costs what it reaches, not the size of the graph. One query at a time per graph."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth: Ints = np.zeros(0, dtype=np.int32)
        self.mark: Ints = np.zeros(0, dtype=np.int32)
        self.vertex_slot: Ints = np.zeros(0, dtype=np.int32)
        self.edge_slot: Ints = np.zeros(0, dtype=np.int32)
        self.hit: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)

    def fit(self, n: int, m: int) -> None:
        if len(self.depth) < n:
            self.depth = np.full(n, -1, dtype=np.int32)
            self.mark = np.full(n, -1, dtype=np.int32)
            self.vertex_slot = np.full(n, -1, dtype=np.int32)
            self.hit = np.zeros(n, dtype=bool)
        if len(self.edge_slot) < m:
            self.edge_slot = np.full(m, -1, dtype=np.int32)


def _distinct(values: Ints, slot: Ints) -> Ints:
    """``values`` without repeats (in no particular order), in time linear in their number:
    numpy's ``unique`` sorts or hashes, ~20x slower on a walk's frontier. ``slot`` is all -1
    over the values' range, and left so."""
    at = np.arange(len(values), dtype=np.int32)
    slot[values] = at
    kept: Ints = values[slot[values] == at]  # one position per value wins the assignment
    slot[values] = -1
    return kept


_scratch_guard = threading.Lock()


def _scratch_of(graph: LineageGraph) -> _Scratch:
    with _scratch_guard:
        scratch: _Scratch | None = getattr(graph, "_scratch", None)
        if scratch is None:
            scratch = _Scratch()
            graph._scratch = scratch  # type: ignore[attr-defined]
        return scratch


BITMAP_SHARE = 16
"""A level of a walk whose far ends number more than the vertices over this finds its new
vertices with a bitmap over all vertices (a few sequential passes) instead of removing
repeats among the ends (several random ones)."""

SMALL_WALK_STEPS = 2_000
"""A walk that follows at most this many edges runs vertex by vertex in Python (a few
microseconds in all); past it the walk starts over a depth level at a time in numpy, whose
fixed cost per operation is paid back on large walks."""


def _walk(
    graph: LineageGraph,
    starts_list: list[str],
    direction: str,
    include_edges: bool,
    filters: LineageFilter,
    max_depth: int,
    max_results: int | None,
    offset: int,
    digest: str,
    properties_of: Any,
    sees: Ints | None,
) -> LineageResult:
    small = _walk_small(
        graph,
        starts_list,
        direction,
        include_edges,
        filters,
        max_depth,
        max_results,
        offset,
        digest,
        properties_of,
        sees,
    )
    if small is not None:
        return small
    scratch = _scratch_of(graph)
    with scratch.lock:
        scratch.fit(len(graph.arns), len(graph.edge_src))
        # what the walk wrote into the scratch arrays: reached vertices, ordered ones
        touched: list[Ints] = []
        try:
            return _walk_on(
                graph,
                starts_list,
                direction,
                include_edges,
                filters,
                max_depth,
                max_results,
                offset,
                digest,
                properties_of,
                sees,
                scratch,
                touched,
            )
        finally:
            for ids in touched:
                scratch.depth[ids] = -1
                scratch.mark[ids] = -1


def _walk_small(
    graph: LineageGraph,
    starts_list: list[str],
    direction: str,
    include_edges: bool,
    filters: LineageFilter,
    max_depth: int,
    max_results: int | None,
    offset: int,
    digest: str,
    properties_of: Any,
    sees: Ints | None,
) -> LineageResult | None:
    """The walk of :func:`_walk_on`, vertex by vertex; None when it would follow more than
    :data:`SMALL_WALK_STEPS` edges."""
    views = graph.views()
    is_live, edge_live, same_as = views.lineage_type, views.edge_live, views.edge_same_as
    account = views.account
    visible = None if sees is None else set(sees.tolist())
    csrs: list[tuple[Any, Any, Any, bool]] = []
    if direction in ("Both", "Descendants"):
        csrs += [(ptr, eids, views.edge_dst, sparse) for ptr, eids, sparse in views.out_csrs]
    if direction in ("Both", "Ascendants"):
        csrs += [(ptr, eids, views.edge_src, sparse) for ptr, eids, sparse in views.in_csrs]
    starts = [
        v
        for v in (graph.vid(a) for a in starts_list)
        if v is not None and (visible is None or account[v] in visible)
    ]
    depth: dict[int, int] = dict.fromkeys(starts, 0)
    followed: list[tuple[int, int, int]] = []
    queue = list(depth)
    truncated = False
    budget = SMALL_WALK_STEPS
    for u in queue:  # grows while walked: breadth-first
        du = depth[u]
        for ptr, eids, far, sparse in csrs:
            if sparse:  # the overlay: ptr holds its sorted keys
                lo, hi = bisect.bisect_left(ptr, u), bisect.bisect_right(ptr, u)
            elif u + 1 >= len(ptr):
                continue
            else:
                lo, hi = ptr[u], ptr[u + 1]
            budget -= hi - lo
            if budget < 0:
                return None
            for e in eids[lo:hi]:
                if not edge_live[e]:
                    continue
                v = far[e]
                if is_live[v] < 0:
                    continue
                if visible is None:
                    if same_as[e]:
                        continue  # the operator sees no SameAs link
                elif account[v] not in visible:
                    continue
                if du >= max_depth:
                    truncated = truncated or v not in depth
                    continue
                followed.append((e, u, v))
                if v not in depth:
                    depth[v] = du + 1
                    queue.append(v)

    reached = np.array(queue, dtype=np.int32)
    matching = _matching(graph, reached, filters, properties_of).tolist()
    if include_edges and not filters.is_empty():
        back: dict[int, list[int]] = {}
        for _, u, v in followed:
            if depth[v] == depth[u] + 1:
                back.setdefault(v, []).append(u)
        chosen = set(matching)
        stack = list(matching)
        while stack:
            for u in back.get(stack.pop(), ()):
                if u not in chosen:
                    chosen.add(u)
                    stack.append(u)
        edge_ids = {e for e, u, v in followed if v in chosen and depth[v] == depth[u] + 1}
    else:
        chosen = set(matching)
        edge_ids = {e for e, _, _ in followed} if include_edges else set()

    # each ARN once (a warm index's list, else decoded from its column)
    arns: Any = graph.arns.listed or {v: graph.arns[v] for v in chosen}
    order = sorted(chosen, key=arns.__getitem__)  # by ARN, then (stably) by depth
    order.sort(key=depth.__getitem__)
    end = len(order) if max_results is None else min(offset + max_results, len(order))
    types, type_names = views.type, [*graph.type_names, None]
    lts = [*LINEAGE_TYPES, ""]
    result = LineageResult(
        vertices=[
            Vertex(arns[v], type_names[types[v]], lts[is_live[v]]) for v in order[offset:end]
        ],
        truncated_by_depth=truncated,
    )
    if include_edges:
        position = {v: i for i, v in enumerate(order)}
        src, dst = views.edge_src, views.edge_dst
        mine = []
        for e in edge_ids:
            later = max(position.get(src[e], -1), position.get(dst[e], -1), 0)
            if offset <= later < end or (offset == 0 and not order):
                mine.append((arns[src[e]], arns[dst[e]], e))
        edge_types, edge_type_names = views.edge_type, [*graph.edge_type_names, None]
        result.edges = [Edge(s, d, edge_type_names[edge_types[e]]) for s, d, e in sorted(mine)]
    if end < len(order):
        result.next_token = encode_token(end, digest)
    return result


def _walk_on(
    graph: LineageGraph,
    starts_list: list[str],
    direction: str,
    include_edges: bool,
    filters: LineageFilter,
    max_depth: int,
    max_results: int | None,
    offset: int,
    digest: str,
    properties_of: Any,
    sees: Ints | None,
    scratch: _Scratch,
    touched: list[Ints],
) -> LineageResult:
    depth, mark = scratch.depth, scratch.mark
    ids = [graph.vid(a) for a in starts_list]
    starts = np.array(sorted({v for v in ids if v is not None}), dtype=np.int32)
    if sees is not None:
        starts = starts[np.isin(graph.account[starts], sees)]
    forward = direction in ("Both", "Descendants")
    backward = direction in ("Both", "Ascendants")
    live = graph.lineage_type
    n = len(graph.arns)

    # breadth-first, a depth level at a time: the depth of every reached vertex, and (when
    # the paths to matching vertices are wanted) every edge followed as (edge id, from, to)
    keep_steps = include_edges and not filters.is_empty()
    depth[starts] = 0
    levels = [starts]
    touched.append(starts)
    followed: list[tuple[Ints, Ints, Ints]] = []
    truncated = False
    frontier, d = starts, 0
    while len(frontier):
        if keep_steps:
            e, u, v = graph.steps(frontier, forward, backward)
            to_vertex = live[v] >= 0
            if sees is None:
                to_vertex &= ~graph.edge_same_as[e]
            else:
                to_vertex &= np.isin(graph.account[v], sees)
            e, u, v = e[to_vertex], u[to_vertex], v[to_vertex]
        else:  # no edge ids needed: the far ends alone
            v = graph.neighbours(frontier, forward, backward, same_as=sees is not None)
            if sees is not None:
                v = v[np.isin(graph.account[v], sees)]
        if d >= max_depth:
            truncated = bool(np.any(depth[v] < 0))
            break
        if keep_steps:
            followed.append((e, u, v))
        if len(v) * BITMAP_SHARE < n:
            new = _distinct(v[depth[v] < 0], scratch.vertex_slot)
        else:  # a large level: mark the ends in a bitmap and read it once
            hit = scratch.hit[:n]
            hit[v] = True
            hit &= depth[:n] < 0
            new = np.flatnonzero(hit).astype(np.int32)
            hit[new] = False
        depth[new] = d + 1
        levels.append(new)
        touched.append(new)
        frontier, d = new, d + 1
    reached = np.concatenate(levels) if len(levels) > 1 else starts

    matching = _matching(graph, reached, filters, properties_of)
    edge_ids: Ints | None = None  # None: every edge followed (found for the page alone)
    if keep_steps:
        fe, fu, fv = _cat(followed)
        # vertices on a shortest path from a start to a matching vertex: walk back along the
        # outward steps only (depth + 1), deepest level first, so dead ends beside a path
        # are not taken in; mark = 1 for such a vertex
        outward = depth[fv] == depth[fu] + 1
        oe, ou, ov = fe[outward], fu[outward], fv[outward]
        mark[matching] = 1
        level_of = depth[ov]
        for lvl in range(int(level_of.max()) if len(level_of) else 0, 0, -1):
            on_path = (level_of == lvl) & (mark[ov] == 1)
            mark[ou[on_path]] = 1
        chosen = reached[mark[reached] == 1]
        edge_ids = _distinct(oe[mark[ov] == 1], scratch.edge_slot)
        mark[reached] = -1
    else:
        chosen = matching

    total = len(chosen)
    end = total if max_results is None else min(offset + max_results, total)
    page = _page(graph, chosen, depth, offset, end, mark)
    result = LineageResult(
        vertices=list(map(Vertex._make, graph.vertices(page))), truncated_by_depth=truncated
    )
    if include_edges:
        if edge_ids is None:
            # every edge followed, and every end of one reached (and chosen): those of the
            # page are among the edges at its vertices
            edge_ids = _followed_at(graph, page, depth, forward, backward, max_depth, sees)
            edge_ids = _distinct(edge_ids, scratch.edge_slot)
        # an edge goes with the page of its later end in the order (-1: an end not chosen)
        src, dst = graph.edge_src[edge_ids], graph.edge_dst[edge_ids]
        page_of = np.maximum(np.maximum(mark[src], mark[dst]), 0)
        mine = edge_ids[((page_of >= offset) & (page_of < end)) | (offset == 0 and not total)]
        result.edges = list(map(Edge._make, graph.edges(_edges_ordered(graph, mine))))
    if end < total:
        result.next_token = encode_token(end, digest)
    return result


def _followed_at(
    graph: LineageGraph,
    vertices: Ints,
    depth: Ints,
    forward: bool,
    backward: bool,
    max_depth: int,
    sees: Ints | None,
) -> Ints:
    """The edges at ``vertices`` the walk followed (with repeats): a step from a reached
    end short of ``max_depth``, in a direction walked, to an end that was reached (which
    it then was), along a link the caller may follow (the operator: no SameAs)."""
    e, _, _ = graph.steps(vertices, forward=True, backward=True)
    x, y = graph.edge_src[e], graph.edge_dst[e]
    dx, dy = depth[x], depth[y]
    step = np.zeros(len(e), dtype=bool)
    if forward:
        step |= dx < max_depth
    if backward:
        step |= dy < max_depth
    step &= (dx >= 0) & (dy >= 0)
    if sees is None:
        step &= ~graph.edge_same_as[e]
    followed: Ints = e[step]
    return followed


def _cat(parts: list[tuple[Ints, Ints, Ints]]) -> tuple[Ints, Ints, Ints]:
    if not parts:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, empty
    if len(parts) == 1:
        return parts[0]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


ARN_SORT_IN_PYTHON = 2_000
"""Up to this many ARNs are sorted as Python strings; more as an Arrow column."""


def _page(
    graph: LineageGraph, chosen: Ints, depth: Ints, offset: int, end: int, mark: Ints
) -> Ints:
    """The ids of ``chosen`` at places ``offset`` to ``end`` in (depth, ARN) order. Also
    writes into ``mark`` a place for every chosen id: exact in the depth levels the page
    meets, elsewhere the first place of the id's level, which is enough to tell whether it
    comes before, on or after the page. Only the levels the page meets are sorted by ARN
    (ids below ``sorted_upto`` sort as their ARNs, so all sort as numbers there)."""
    if not len(chosen):
        return chosen
    levels = depth[chosen]
    if int(chosen.max()) < graph.arns.sorted_upto:
        key = (levels.astype(np.int64) << 32) | chosen
        order: Ints = (np.sort(key) & 0xFFFFFFFF).astype(np.int32)
        mark[order] = np.arange(len(order), dtype=np.int32)
        return order[offset:end]
    # a walk lists what it reaches a level at a time, so chosen ids come in depth order
    in_order = bool((levels[1:] >= levels[:-1]).all())
    order = chosen.copy() if in_order else chosen[np.argsort(levels, kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(levels))]).tolist()
    for lo, hi in itertools.pairwise(bounds):
        ids = order[lo:hi]
        if hi <= offset or lo >= end:
            mark[ids] = lo
            continue
        ids = ids[_arn_order(graph, ids)]
        order[lo:hi] = ids
        mark[ids] = np.arange(lo, hi, dtype=np.int32)
    return order[offset:end]


def _arn_order(graph: LineageGraph, ids: Ints) -> Ints:
    """The positions of ``ids`` in the order of their ARNs."""
    if len(ids) <= ARN_SORT_IN_PYTHON:
        arns = [graph.arns[v] for v in ids.tolist()]
        return np.array(sorted(range(len(arns)), key=arns.__getitem__), dtype=np.int64)
    out: Ints = pc.sort_indices(graph.arns.column(ids)).to_numpy()
    return out


def _edges_ordered(graph: LineageGraph, eids: Ints) -> Ints:
    """Edge ids by (source ARN, destination ARN)."""
    if not len(eids):
        return eids
    src, dst = graph.edge_src[eids], graph.edge_dst[eids]
    if max(int(src.max()), int(dst.max())) < graph.arns.sorted_upto:
        n = np.int64(max(len(graph.arns), 1))
        ordered: Ints = eids[np.argsort(src.astype(np.int64) * n + dst)]
        return ordered
    if len(eids) > ARN_SORT_IN_PYTHON:
        ends = pa.table({"s": graph.arns.column(src), "d": graph.arns.column(dst)})
        at = pc.sort_indices(ends, sort_keys=[("s", "ascending"), ("d", "ascending")])
        by_arn: Ints = eids[at.to_numpy()]
        return by_arn
    arns = graph.arns
    return np.array(
        sorted(
            eids.tolist(),
            key=lambda e: (arns[int(graph.edge_src[e])], arns[int(graph.edge_dst[e])]),
        ),
        dtype=np.int32,
    )


def _matching(graph: LineageGraph, reached: Ints, f: LineageFilter, properties_of: Any) -> Ints:
    if f.is_empty():
        return reached
    keep = np.ones(len(reached), dtype=bool)
    if f.types:
        wanted = [i for i, name in enumerate(graph.type_names) if name in set(f.types)]
        keep &= np.isin(graph.type[reached], wanted)
    if f.lineage_types:
        wanted = [i for i, name in enumerate(LINEAGE_TYPES) if name in set(f.lineage_types)]
        keep &= np.isin(graph.lineage_type[reached], wanted)
    for bound, values, has, below in (
        (f.created_before, graph.created, graph.has_created, True),
        (f.created_after, graph.created, graph.has_created, False),
        (f.modified_before, graph.modified, graph.has_modified, True),
        (f.modified_after, graph.modified, graph.has_modified, False),
    ):
        limit = _epoch_us(bound)
        if limit is None:
            continue
        at = values[reached]
        keep &= has[reached] & ((at < limit) if below else (at > limit))
    out = reached[keep]
    if f.properties and len(out):
        arns = [graph.arns[v] for v in out.tolist()]
        props = properties_of(arns) if properties_of else {}
        wanted_items = f.properties.items()
        out = out[
            np.array(
                [any(props.get(a, {}).get(k) == val for k, val in wanted_items) for a in arns],
                dtype=bool,
            )
        ]
    return out
