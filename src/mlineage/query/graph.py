"""The lineage graph as a compact index: dense integer ids, CSR adjacency both ways, and
per-vertex arrays (numpy), so it loads in one pass of column copies and a walk is a few
array operations per depth level.

Layout (``n`` vertex ids, ``m`` edge ids):

- ``arns[i]``: the ARN of id ``i``. Ids are dense; after :meth:`LineageGraph.load` they are
  in ARN order (so sorting ids sorts ARNs); ids added by :meth:`LineageGraph.apply` follow
  (``sorted_upto`` says where ARN order ends).
- ``lineage_type`` (int8 code into :data:`LINEAGE_TYPES`, ``-1``: not a live vertex, e.g. an
  edge end that is not a live entity), ``type`` / ``account`` (int32 codes into
  ``type_names`` / ``account_names``, ``-1``: none), ``created`` / ``modified`` (int64
  microseconds since the epoch, UTC; ``has_created`` / ``has_modified`` say which are set).
- Edges: ``edge_src``, ``edge_dst`` (int32 ids), ``edge_type`` (code into ``edge_type_names``),
  ``edge_live`` (False: removed by a later :meth:`~LineageGraph.apply`), ``edge_same_as``
  (True: not an association but a ``SameAs`` link between two artifacts with the same id in
  different accounts or regions, both ways; a walk on behalf of an account follows them
  between the accounts it sees, the operator's walk never does — docs/accounts.md).
- CSR: ``out_ptr`` / ``out_eid`` list the edge ids leaving each vertex (``out_eid[out_ptr[v]:
  out_ptr[v + 1]]``), ``in_ptr`` / ``in_eid`` those entering it. Edges added after the load
  sit in a second, small CSR (the *overlay*, rebuilt on each apply) until :meth:`compact`
  folds everything into one again (done by :meth:`apply` when the overlay grows past an
  eighth of the graph).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlineage._gc import gc_paused

LINEAGE_TYPES = ("TrialComponent", "Artifact", "Context", "Action")
_LT_CODE = {name: i for i, name in enumerate(LINEAGE_TYPES)}

Ints = npt.NDArray[np.int32]
Int64s = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_EMPTY = np.zeros(0, dtype=np.int32)
_NO_VERTICES = pa.table(
    {
        "arn": pa.array([], pa.string()),
        "lineage_type": pa.array([], pa.string()),
        "type": pa.array([], pa.string()),
        "c": pa.array([], pa.int64()),
        "m": pa.array([], pa.int64()),
        "account_id": pa.array([], pa.string()),
    }
)


def _csr(keys: Ints, n: int) -> tuple[Int64s, Ints]:
    """Pointers and edge ids of a CSR over ``n`` vertices, edges grouped by ``keys``."""
    order = np.argsort(keys, kind="stable").astype(np.int32)
    counts = np.bincount(keys, minlength=n) if len(keys) else np.zeros(n, dtype=np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, order


def _gather(ptr: Int64s, eids: Ints, frontier: Ints) -> tuple[Ints, Ints]:
    """The edge ids of ``frontier``'s vertices in a CSR, and for each the vertex it leaves
    from. Ids beyond the CSR (added later) have none."""
    frontier = frontier[frontier < len(ptr) - 1]
    if not len(frontier):
        return _EMPTY, _EMPTY
    lo, hi = ptr[frontier], ptr[frontier + 1]
    lens = hi - lo
    total = int(lens.sum())
    if total == 0:
        return _EMPTY, _EMPTY
    # positions lo[i] .. hi[i]-1 for every i, without a Python loop
    starts = np.repeat(lo - np.cumsum(lens) + lens, lens)
    idx = starts + np.arange(total)
    return eids[idx], np.repeat(frontier, lens)


@dataclass
class _Codes:
    """A column of strings as int32 codes into a list of names (-1: null)."""

    codes: Ints
    names: list[str]

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> _Codes:
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.unify_dictionaries().combine_chunks()
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        return cls(codes, [str(x) for x in names])


class LineageGraph:
    """The live lineage graph (vertices and visible edges) of one state of the projection.

    Built by :meth:`load`; :meth:`apply` brings it up to date with changed vertices and edges
    without a rebuild.
    """

    def __init__(self) -> None:
        self.arns: list[str] = []
        self.ids: dict[str, int] = {}
        self.sorted_upto = 0
        self.lineage_type: npt.NDArray[np.int8] = np.zeros(0, dtype=np.int8)
        self.type: Ints = _EMPTY
        self.type_names: list[str] = []
        self.account: Ints = _EMPTY
        self.account_names: list[str] = []
        self.created: Int64s = np.zeros(0, dtype=np.int64)
        self.modified: Int64s = np.zeros(0, dtype=np.int64)
        self.has_created: Bools = np.zeros(0, dtype=bool)
        self.has_modified: Bools = np.zeros(0, dtype=bool)
        self.edge_src: Ints = _EMPTY
        self.edge_dst: Ints = _EMPTY
        self.edge_type: Ints = _EMPTY
        self.edge_type_names: list[str] = []
        self.edge_live: Bools = np.zeros(0, dtype=bool)
        self.edge_same_as: Bools = np.zeros(0, dtype=bool)
        self.base_edges = 0  # edge ids below this are in the main CSR, the rest in the overlay
        self.out_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.out_eid: Ints = _EMPTY
        self.in_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.in_eid: Ints = _EMPTY
        self.ov_out_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.ov_out_eid: Ints = _EMPTY
        self.ov_in_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.ov_in_eid: Ints = _EMPTY
        self._views: Views | None = None
        self.tracks_same_as = False
        """Whether the SameAs links are in the index (and :meth:`refresh` keeps them)."""

    # -- building ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        con: duckdb.DuckDBPyConnection,
        *,
        vertices_sql: str = "lineage_vertices",
        edges_sql: str = "lineage_edges",
        same_as: bool = True,
    ) -> LineageGraph:
        """Read the vertices and edges (one read transaction, so both are of one committed
        state) and build the index from their columns; with ``same_as``, also the SameAs
        links (none where an edge joins the two artifacts already)."""
        # dense ids in ARN order, assigned by DuckDB (every vertex, and any edge end that is
        # not one), and the edges as pairs of ids: joins done there, not in Python
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE mlineage_graph_ids AS SELECT row_number() OVER "
                "(ORDER BY arn) - 1 AS vid, * FROM (SELECT arn, lineage_type, type, "
                "epoch_us(created_at) AS c, epoch_us(modified_at) AS m, account_id "
                f"FROM {vertices_sql} UNION ALL SELECT DISTINCT x, NULL, NULL, NULL, NULL, NULL "
                f"FROM (SELECT source_arn AS x FROM {edges_sql} UNION SELECT destination_arn "
                f"FROM {edges_sql}) ANTI JOIN {vertices_sql} v ON v.arn = x)"
            )
            vertices = con.sql(
                "SELECT arn, lineage_type, type, c, m, account_id "
                "FROM mlineage_graph_ids ORDER BY vid"
            ).to_arrow_table()
            links = (
                " UNION ALL SELECT a.vid, b.vid, 'SameAs', true "
                f"FROM {_same_as_pairs('mlineage_graph_ids', edges_sql, 'true')}"
                if same_as
                else ""
            )
            edges = con.sql(
                f"SELECT s.vid, d.vid, e.association_type, false FROM {edges_sql} e "
                "JOIN mlineage_graph_ids s ON s.arn = e.source_arn "
                f"JOIN mlineage_graph_ids d ON d.arn = e.destination_arn{links}"
            ).to_arrow_table()
            con.execute("DROP TABLE mlineage_graph_ids")
        finally:
            con.execute("COMMIT")
        g = cls()
        g.tracks_same_as = same_as
        with gc_paused():  # hundreds of thousands of ARN strings into a list and a dict
            g._build(_table(vertices), _table(edges))
        return g

    def _build(self, vertices: pa.Table, edges: pa.Table) -> None:
        """From the vertices in id order and the edges as (source id, destination id,
        association type)."""
        self.arns = vertices.column(0).to_pylist()
        n = len(self.arns)
        self.ids = dict(zip(self.arns, range(n), strict=True))
        self.sorted_upto = n
        lt = _Codes.of(vertices.column(1))
        lt_map = np.array([_LT_CODE.get(x, -1) for x in lt.names] + [-1], dtype=np.int8)
        self.lineage_type = lt_map[lt.codes]
        types = _Codes.of(vertices.column(2))
        self.type, self.type_names = types.codes, types.names
        accounts = _Codes.of(vertices.column(5))
        self.account, self.account_names = accounts.codes, accounts.names
        self.created, self.has_created = _times(vertices.column(3))
        self.modified, self.has_modified = _times(vertices.column(4))
        self.edge_src = _int32(edges.column(0))
        self.edge_dst = _int32(edges.column(1))
        et = _Codes.of(edges.column(2))
        self.edge_type, self.edge_type_names = et.codes, et.names
        self.edge_live = np.ones(len(self.edge_src), dtype=bool)
        self.edge_same_as = edges.column(3).to_numpy(zero_copy_only=False).astype(bool)
        self._index_all()

    def _index_all(self) -> None:
        n = len(self.arns)
        self.base_edges = len(self.edge_src)
        self.out_ptr, self.out_eid = _csr(self.edge_src, n)
        self.in_ptr, self.in_eid = _csr(self.edge_dst, n)
        self._index_overlay()

    def _index_overlay(self) -> None:
        self._views = None
        n = len(self.arns)
        base = self.base_edges
        ptr, eid = _csr(self.edge_src[base:], n)
        self.ov_out_ptr, self.ov_out_eid = ptr, (eid + base).astype(np.int32)
        ptr, eid = _csr(self.edge_dst[base:], n)
        self.ov_in_ptr, self.ov_in_eid = ptr, (eid + base).astype(np.int32)

    # -- following writes ----------------------------------------------------------------

    def apply(
        self,
        vertices: pa.Table,
        gone_vertices: Iterable[str],
        edges: pa.Table,
        gone_edges: Iterable[tuple[str, str]],
        *,
        same_as: bool = False,
    ) -> None:
        """Bring the index up to date: ``vertices`` (rows as :meth:`load` reads them) are
        live now, ``gone_vertices`` are not; ``edges`` are visible now (replacing any edge
        between the same two ends), ``gone_edges`` are not. Cost: the size of the change,
        plus an overlay rebuild proportional to the edges added since the last compaction."""
        self._views = None
        vertices, edges = _table(vertices), _table(edges)
        new_arns = [
            a
            for a in dict.fromkeys(
                vertices.column(0).to_pylist()
                + edges.column(0).to_pylist()
                + edges.column(1).to_pylist()
            )
            if a not in self.ids
        ]
        if new_arns:
            self._add_ids(new_arns)
        for arn in gone_vertices:
            gone = self.ids.get(arn)
            if gone is not None:
                self.lineage_type[gone] = -1
        if vertices.num_rows:
            vid = np.array([self.ids[a] for a in vertices.column(0).to_pylist()], dtype=np.int64)
            self.lineage_type[vid] = [
                _LT_CODE.get(x, -1) if x is not None else -1 for x in vertices.column(1).to_pylist()
            ]
            self.type[vid] = _codes_into(vertices.column(2).to_pylist(), self.type_names)
            self.account[vid] = _codes_into(vertices.column(5).to_pylist(), self.account_names)
            for values, has, column in (
                (self.created, self.has_created, 3),
                (self.modified, self.has_modified, 4),
            ):
                col = vertices.column(column)
                has[vid] = col.is_valid().to_numpy(zero_copy_only=False)
                values[vid] = col.fill_null(0).to_numpy(zero_copy_only=False)
        # the edges replaced or gone: found among the out-edges of their sources, at once
        pairs = list(gone_edges)
        pairs += zip(edges.column(0).to_pylist(), edges.column(1).to_pylist(), strict=True)
        known = [(self.ids[a], self.ids[b]) for a, b in pairs if a in self.ids and b in self.ids]
        if known:
            ends = np.array(known, dtype=np.int64)
            n = np.int64(len(self.arns))
            srcs = np.unique(ends[:, 0]).astype(np.int32)
            eids, _, _ = self.steps(srcs, forward=True, backward=False)
            keys = self.edge_src[eids].astype(np.int64) * n + self.edge_dst[eids]
            self.edge_live[eids[np.isin(keys, ends[:, 0] * n + ends[:, 1])]] = False
        if edges.num_rows:
            src = np.array([self.ids[a] for a in edges.column(0).to_pylist()], dtype=np.int32)
            dst = np.array([self.ids[a] for a in edges.column(1).to_pylist()], dtype=np.int32)
            typ = _codes_into(edges.column(2).to_pylist(), self.edge_type_names)
            self.edge_src = np.concatenate([self.edge_src, src])
            self.edge_dst = np.concatenate([self.edge_dst, dst])
            self.edge_type = np.concatenate([self.edge_type, typ])
            self.edge_live = np.concatenate([self.edge_live, np.ones(len(src), dtype=bool)])
            self.edge_same_as = np.concatenate(
                [self.edge_same_as, np.full(len(src), same_as, dtype=bool)]
            )
        if len(self.edge_src) - self.base_edges > max(10_000, self.base_edges // 8):
            self.compact()
        elif edges.num_rows or new_arns:
            self._index_overlay()

    def refresh(
        self,
        con: duckdb.DuckDBPyConnection,
        vertices: Iterable[str],
        edges: Iterable[tuple[str, str]],
        *,
        vertices_sql: str = "lineage_vertices",
        edges_sql: str = "lineage_edges",
    ) -> None:
        """Read the current state of these vertices and edges (those a batch changed, from
        :meth:`~mlineage.projection.store.DuckDBStore.take_graph_changes`) and
        :meth:`apply` it: the cost of the change, not of the graph."""
        arns, pairs = sorted(set(vertices)), sorted(set(edges))
        con.execute("BEGIN TRANSACTION")
        try:
            rows = con.sql(
                f"SELECT arn, lineage_type, type, epoch_us(created_at) AS c, "
                f"epoch_us(modified_at) AS m, account_id FROM {vertices_sql} "
                f"WHERE arn IN (SELECT unnest($a))",
                params={"a": arns},
            ).to_arrow_table()
            found = con.sql(
                f"SELECT e.source_arn, e.destination_arn, e.association_type FROM {edges_sql} e "
                "JOIN (SELECT unnest($s) AS s, unnest($d) AS d) p "
                "ON e.source_arn = p.s AND e.destination_arn = p.d",
                params={"s": [p[0] for p in pairs], "d": [p[1] for p in pairs]},
            ).to_arrow_table()
        finally:
            con.execute("COMMIT")
        live = set(rows.column(0).to_pylist())
        visible = set(zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True))
        self.apply(
            rows, [a for a in arns if a not in live], found, [p for p in pairs if p not in visible]
        )
        if self.tracks_same_as:
            self._refresh_same_as(
                con, set(arns) | {e for p in pairs for e in p}, vertices_sql, edges_sql
            )

    def _refresh_same_as(
        self, con: duckdb.DuckDBPyConnection, touched: set[str], vertices_sql: str, edges_sql: str
    ) -> None:
        """Recompute the SameAs links of every artifact id among ``touched``."""
        ids = sorted({i for i in map(_artifact_id, touched) if i is not None})
        if not ids:
            return
        wanted = con.sql(
            "SELECT a.arn, b.arn, 'SameAs' FROM "
            + _same_as_pairs(
                vertices_sql,
                edges_sql,
                "split_part(a.arn, '/', 2) IN (SELECT unnest($ids))",
                by="arn",
            ),
            params={"ids": ids},
        ).to_arrow_table()
        mine = set(ids)
        for eid in np.flatnonzero(self.edge_same_as & self.edge_live).tolist():
            if _artifact_id(self.arns[int(self.edge_src[eid])]) in mine:
                self.edge_live[eid] = False
        self.apply(_NO_VERTICES, [], wanted, [], same_as=True)

    def compact(self) -> None:
        """Fold the overlay and the removed edges into one CSR again."""
        keep = np.flatnonzero(self.edge_live)
        self.edge_src, self.edge_dst = self.edge_src[keep], self.edge_dst[keep]
        self.edge_type = self.edge_type[keep]
        self.edge_same_as = self.edge_same_as[keep]
        self.edge_live = np.ones(len(keep), dtype=bool)
        self._index_all()

    def _add_ids(self, new_arns: Sequence[str]) -> None:
        k = len(new_arns)
        for arn in new_arns:
            self.ids[arn] = len(self.arns)
            self.arns.append(arn)
        self.lineage_type = np.concatenate([self.lineage_type, np.full(k, -1, dtype=np.int8)])
        self.type = np.concatenate([self.type, np.full(k, -1, dtype=np.int32)])
        self.account = np.concatenate([self.account, np.full(k, -1, dtype=np.int32)])
        self.created = np.concatenate([self.created, np.zeros(k, dtype=np.int64)])
        self.modified = np.concatenate([self.modified, np.zeros(k, dtype=np.int64)])
        self.has_created = np.concatenate([self.has_created, np.zeros(k, dtype=bool)])
        self.has_modified = np.concatenate([self.has_modified, np.zeros(k, dtype=bool)])

    # -- reading -------------------------------------------------------------------------

    def views(self) -> Views:
        """Memoryviews of the arrays, for walks that visit a few vertices one at a time
        (indexing a memoryview gives a Python int, several times faster than numpy's
        scalar indexing)."""
        if self._views is None:
            self._views = Views(self)
        return self._views

    def vid(self, arn: str) -> int | None:
        """The id of a live vertex (None: not a live entity of the graph)."""
        vid = self.ids.get(arn)
        return vid if vid is not None and self.lineage_type[vid] >= 0 else None

    def is_vertex(self, vid: int) -> bool:
        return bool(self.lineage_type[vid] >= 0)

    @property
    def vertex_count(self) -> int:
        return int(np.count_nonzero(self.lineage_type >= 0))

    @property
    def edge_count(self) -> int:
        return int(np.count_nonzero(self.edge_live))

    def type_of(self, vid: int) -> str | None:
        code = int(self.type[vid])
        return self.type_names[code] if code >= 0 else None

    def lineage_type_of(self, vid: int) -> str | None:
        code = int(self.lineage_type[vid])
        return LINEAGE_TYPES[code] if code >= 0 else None

    def vertices(self, vids: Ints) -> list[tuple[str, str | None, str]]:
        """(ARN, type, lineage type) of each vertex, in one pass over plain lists."""
        names, arns = [*self.type_names, None], self.arns
        lts = [*LINEAGE_TYPES, ""]
        return [
            (arns[v], names[t], lts[lt])
            for v, t, lt in zip(
                vids.tolist(),
                self.type[vids].tolist(),
                self.lineage_type[vids].tolist(),
                strict=True,
            )
        ]

    def edges(self, eids: Ints) -> list[tuple[str, str, str | None]]:
        """(source ARN, destination ARN, association type) of each edge."""
        names, arns = [*self.edge_type_names, None], self.arns
        return [
            (arns[s], arns[d], names[t])
            for s, d, t in zip(
                self.edge_src[eids].tolist(),
                self.edge_dst[eids].tolist(),
                self.edge_type[eids].tolist(),
                strict=True,
            )
        ]

    def edge_type_of(self, eid: int) -> str | None:
        code = int(self.edge_type[eid])
        return self.edge_type_names[code] if code >= 0 else None

    def account_codes(self, accounts: Iterable[str]) -> Ints:
        """The codes of these accounts in ``account`` (accounts the graph has none of are
        left out)."""
        wanted = set(accounts)
        return np.array(
            [i for i, name in enumerate(self.account_names) if name in wanted], dtype=np.int32
        )

    def steps(self, frontier: Ints, forward: bool, backward: bool) -> tuple[Ints, Ints, Ints]:
        """Every live edge at ``frontier`` in the given directions, as (edge id, the frontier
        vertex it leaves from, the vertex it leads to)."""
        parts: list[tuple[Ints, Ints, Ints]] = []
        if forward:
            for ptr, eids in ((self.out_ptr, self.out_eid), (self.ov_out_ptr, self.ov_out_eid)):
                e, u = _gather(ptr, eids, frontier)
                parts.append((e, u, self.edge_dst[e]))
        if backward:
            for ptr, eids in ((self.in_ptr, self.in_eid), (self.ov_in_ptr, self.ov_in_eid)):
                e, u = _gather(ptr, eids, frontier)
                parts.append((e, u, self.edge_src[e]))
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return _EMPTY, _EMPTY, _EMPTY
        if len(parts) == 1:
            e, u, v = parts[0]
        else:
            e = np.concatenate([p[0] for p in parts])
            u = np.concatenate([p[1] for p in parts])
            v = np.concatenate([p[2] for p in parts])
        live = self.edge_live[e]
        if not live.all():
            e, u, v = e[live], u[live], v[live]
        return e, u, v

    def nbytes(self) -> int:
        """Bytes held by the index's arrays (the ARN strings and their dict not counted)."""
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


class Views:
    """Memoryviews of a graph's arrays (see :meth:`LineageGraph.views`)."""

    def __init__(self, g: LineageGraph) -> None:
        self.lineage_type = g.lineage_type.data
        self.edge_src = g.edge_src.data
        self.edge_dst = g.edge_dst.data
        self.edge_live = g.edge_live.data
        self.edge_same_as = g.edge_same_as.data
        self.account = g.account.data
        self.out_csrs = [
            (p.data, e.data)
            for p, e in ((g.out_ptr, g.out_eid), (g.ov_out_ptr, g.ov_out_eid))
            if len(e)
        ]
        self.in_csrs = [
            (p.data, e.data)
            for p, e in ((g.in_ptr, g.in_eid), (g.ov_in_ptr, g.ov_in_eid))
            if len(e)
        ]


def _same_as_pairs(vertices: str, edges: str, where: str, *, by: str = "vid") -> str:
    """FROM-clause of the SameAs pairs (``a``, ``b``): two live artifacts with the same id
    (the part after ``artifact/``) and different ARNs, where no edge runs from a to b."""
    return (
        f"{vertices} a JOIN {vertices} b ON a.lineage_type = 'Artifact' "
        "AND b.lineage_type = 'Artifact' AND split_part(a.arn, '/', 2) = "
        f"split_part(b.arn, '/', 2) AND a.{by} <> b.{by} WHERE {where} AND NOT EXISTS "
        f"(SELECT 1 FROM {edges} e WHERE e.source_arn = a.arn AND e.destination_arn = b.arn)"
    )


def _artifact_id(arn: str) -> str | None:
    _, sep, tail = arn.partition(":artifact/")
    return tail if sep else None


def _table(data: Any) -> pa.Table:
    # DuckDB hands back a RecordBatchReader or a Table depending on the version
    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data


def _int32(column: pa.ChunkedArray) -> Ints:
    ids: Ints = column.to_numpy().astype(np.int32)
    return ids


def _times(column: pa.ChunkedArray) -> tuple[Int64s, Bools]:
    has: Bools = column.is_valid().to_numpy(zero_copy_only=False)
    values: Int64s = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, has


def _codes_into(values: list[Any], names: list[str]) -> Ints:
    """Codes of ``values`` in ``names``, appending names not seen yet (None: -1)."""
    index = {name: i for i, name in enumerate(names)}
    out = np.empty(len(values), dtype=np.int32)
    for i, value in enumerate(values):
        if value is None:
            out[i] = -1
            continue
        code = index.get(value)
        if code is None:
            code = index[value] = len(names)
            names.append(value)
        out[i] = code
    return out
