"""The lineage graph as a compact index: dense integer ids, CSR adjacency both ways, and
per-vertex arrays (numpy), so it loads in one pass of column copies and a walk is a few
array operations per depth level.

Layout (``n`` vertex ids, ``m`` edge ids):

- ``arns[i]``: the ARN of id ``i`` (:class:`Arns`). Ids are dense. :meth:`LineageGraph.open`
  takes them from the projection, where the projector gives each vertex entity one the
  first time it sees it (``entity_state.vid``) and keeps the live vertices' rows in
  ``graph_vertices`` and each visible edge's ends as ids in ``visible_edges``: opening is a
  few column copies. :meth:`LineageGraph.load` (any SQL source, e.g. an account view)
  numbers the vertices in ARN order itself. Ids added by :meth:`LineageGraph.apply` follow.
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

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from mlineage._gc import gc_paused
from mlineage.projection.schema import LINEAGE_TYPES

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


def _stable_order(keys: Ints) -> Ints:
    """The stable sort order of non-negative ``keys``, as radix passes of 16 bits (numpy
    sorts 16-bit integers by radix: linear, 2-4x faster than its sort of 32-bit ones)."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if len(keys) and int(keys.max()) > 0xFFFF:
        order = order[np.argsort((keys[order] >> 16).astype(np.uint16), kind="stable")]
    out: Ints = order.astype(np.int32)
    return out


def _csr(keys: Ints, n: int) -> tuple[Int64s, Ints]:
    """Pointers and edge ids of a CSR over ``n`` vertices, edges grouped by ``keys``."""
    order = _stable_order(keys)
    counts = np.bincount(keys, minlength=n) if len(keys) else np.zeros(n, dtype=np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, order


def _slots(ptr: Int64s, frontier: Ints) -> tuple[Int64s, Ints, Int64s]:
    """The CSR slots of ``frontier``'s vertices (ids beyond the CSR, added later, have
    none): (slots, the vertices that have some, how many each has)."""
    if len(frontier) and int(frontier.max()) >= len(ptr) - 1:
        frontier = frontier[frontier < len(ptr) - 1]
    lo = ptr[frontier]
    lens = ptr[frontier + 1] - lo
    return _ranges(lo, lens), frontier, lens


def _ranges(lo: Int64s, lens: Int64s) -> Int64s:
    """Positions ``lo[i]`` .. ``lo[i] + lens[i] - 1`` for every i, without a Python loop."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - np.cumsum(lens) + lens, lens)
    positions: Int64s = starts + np.arange(total)
    return positions


def _gather(ptr: Int64s, eids: Ints, frontier: Ints) -> tuple[Ints, Ints]:
    """The edge ids of ``frontier``'s vertices in a CSR, and for each the vertex it leaves
    from. Ids beyond the CSR (added later) have none."""
    slots, frontier, lens = _slots(ptr, frontier)
    if not len(slots):
        return _EMPTY, _EMPTY
    return eids[slots], np.repeat(frontier, lens)


def _gather_sorted(keys: Ints, eids: Ints, frontier: Ints) -> tuple[Ints, Ints]:
    """:func:`_gather` for edge ids listed by sorted keys (the overlay)."""
    if not len(keys) or not len(frontier):
        return _EMPTY, _EMPTY
    lo = np.searchsorted(keys, frontier, side="left")
    lens = np.searchsorted(keys, frontier, side="right") - lo
    positions = _ranges(lo, lens)
    if not len(positions):
        return _EMPTY, _EMPTY
    return eids[positions], np.repeat(frontier, lens)


SAVED_FORMAT = 3
"""Bump when what :meth:`LineageGraph.save` writes changes: saved indexes of another format
are built again."""

_SAVED_ARRAYS = (
    "lineage_type",
    "type",
    "account",
    "created",
    "modified",
    "has_created",
    "has_modified",
    "edge_src",
    "edge_dst",
    "edge_type",
    "edge_live",
    "edge_same_as",
    "out_ptr",
    "out_eid",
    "in_ptr",
    "in_eid",
    "out_nbr",
    "in_nbr",
)

_VERTEX_FILL = (
    ("lineage_type", -1),
    ("type", -1),
    ("account", -1),
    ("created", 0),
    ("modified", 0),
    ("has_created", False),
    ("has_modified", False),
)
"""The per-vertex arrays and what an id that is not a vertex holds in each."""


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


def arn_hash(arn: str) -> int:
    """The 64-bit hash the projector stores with each vertex (DuckDB's
    ``md5_number_lower(arn)``: the last 8 bytes of the ARN's MD5, little-endian)."""
    return int.from_bytes(hashlib.md5(arn.encode()).digest()[8:], "little")  # noqa: S324


SCAN_LOOKUPS = 64
"""Lookups an index opened from columns answers by scanning the ARN hashes (a fraction of a
millisecond each) before it sorts them once (~10 ms at 100k jobs) for binary searches."""

WARM_AFTER = 200
"""Lookups after which an index opened from columns turns its ARNs into a Python list and
dict (~100 ms at 100k jobs): a one-shot reader never pays it, a long-lived one does once,
then a lookup is a dict probe and an ARN a list item."""


class Arns:
    """The ARN of each vertex id and the id of each ARN.

    Built either from a list of ARNs in ARN order (:meth:`of_list`: ids sort as their ARNs
    do), or from the rows of the projection's ``graph_vertices`` as they come
    (:meth:`of_columns`: an Arrow string column, each row's id and ARN hash): no Python
    object per vertex, so opening costs a few column copies; ARNs are decoded from the
    column's buffers when asked for. Ids given later (vertices the index learns of while
    following writes) are kept aside in a dict.
    """

    def __init__(self) -> None:
        self._list: list[str | None] | None = []
        self._dict: dict[str, int] | None = {}
        self._n = 0
        self.sorted_upto = 0
        """Ids below this are in ARN order (:meth:`of_list`)."""
        # columns mode: rows as they came, with each row's id and ARN hash
        self._column: pa.Array | None = None
        self._hashes: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._row_vid: Ints = _EMPTY
        self._row_of: Ints = _EMPTY
        self._by_hash: Ints | None = None  # rows in hash order, once sorted
        self._sorted: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._offsets: memoryview = memoryview(b"")
        self._data: memoryview = memoryview(b"")
        self._extra: dict[str, int] = {}
        self._extra_arn: dict[int, str] = {}
        self._lookups = 0
        self._added = False  # ids given since the columns were read

    @classmethod
    def of_list(cls, arns: list[str]) -> Arns:
        """From every id's ARN, in ARN order."""
        out = cls()
        out._list = list(arns)
        out._dict = dict(zip(arns, range(len(arns)), strict=True))
        out._n = out.sorted_upto = len(arns)
        return out

    @classmethod
    def of_columns(
        cls, n: int, vid: Ints, column: pa.Array, hashes: npt.NDArray[np.uint64]
    ) -> Arns:
        """From rows (``vid[i]``, ``column[i]``, ``hashes[i]``: :func:`arn_hash`); ids below
        ``n`` that no row names have no ARN (not live)."""
        out = cls()
        out._list = out._dict = None
        out._n = n
        if column.type != pa.large_string():
            column = column.cast(pa.large_string())
        out._column = column
        out._hashes, out._row_vid = hashes, vid
        out._row_of = np.full(n, -1, dtype=np.int32)
        out._row_of[vid] = np.arange(len(vid), dtype=np.int32)
        buffers = column.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int64)[
            column.offset : column.offset + len(column) + 1
        ]
        out._offsets = offsets.data
        out._data = memoryview(buffers[2]) if buffers[2] is not None else memoryview(b"")
        return out

    def __len__(self) -> int:
        return self._n

    @property
    def listed(self) -> list[str | None] | None:
        """Every id's ARN as a plain list (None for an id without one), once warm (see
        :data:`WARM_AFTER`); None before."""
        return self._list

    def __getitem__(self, vid: int) -> str:
        if self._list is not None:
            arn = self._list[vid] if vid < len(self._list) else None
        elif (arn := self._extra_arn.get(vid)) is None:
            row = int(self._row_of[vid]) if vid < len(self._row_of) else -1
            if row >= 0:
                arn = str(self._data[self._offsets[row] : self._offsets[row + 1]], "utf-8")
        if arn is None:
            raise KeyError(f"vertex id {vid} has no ARN (not a live vertex)")
        return arn

    def __iter__(self) -> Iterator[str | None]:
        for vid in range(self._n):
            try:
                yield self[vid]
            except KeyError:
                yield None

    def column(self, vids: Ints) -> pa.Array:
        """The ARNs of these ids as an Arrow string column (for sorting many at once)."""
        if self._column is not None and not self._added:
            return self._column.take(pa.array(self._row_of[vids]))
        return pa.array([self[v] for v in vids.tolist()], pa.large_string())

    def get(self, arn: str) -> int | None:
        """The id of ``arn`` (None: the index has never seen it)."""
        if self._dict is not None:
            return self._dict.get(arn)
        self._lookups += 1
        if self._lookups > WARM_AFTER:
            self.warm()
            return self.get(arn)
        vid = self._extra.get(arn)
        if vid is not None:
            return vid
        h = np.uint64(arn_hash(arn))
        if self._by_hash is None and self._lookups <= SCAN_LOOKUPS:
            rows = np.flatnonzero(self._hashes == h).tolist()
        else:
            if self._by_hash is None:
                self._by_hash = np.argsort(self._hashes).astype(np.int32)
                self._sorted = self._hashes[self._by_hash]
            at = int(np.searchsorted(self._sorted, h))
            rows = []
            while at < len(self._sorted) and self._sorted[at] == h:
                rows.append(int(self._by_hash[at]))
                at += 1
        for row in rows:
            vid = int(self._row_vid[row])
            if self[vid] == arn:
                return vid
        return None

    def add(self, arn: str, vid: int | None = None) -> int:
        """Give ``arn`` an id: ``vid`` (as the projection gave it) or the next one."""
        vid = self._n if vid is None else vid
        self._added = True
        if self._list is not None and self._dict is not None:
            self._list.extend([None] * (vid + 1 - len(self._list)))
            self._list[vid] = arn
            self._dict[arn] = vid
        else:
            self._extra[arn] = vid
            self._extra_arn[vid] = arn
        self._n = max(self._n, vid + 1)
        return vid

    def warm(self) -> None:
        """Turn the columns into a list and a dict (see :data:`WARM_AFTER`)."""
        if self._list is not None or self._column is None:
            return
        with gc_paused():
            rows = self._column.to_pylist()
            listed: list[str | None] = [None] * self._n
            for vid, arn in zip(self._row_vid.tolist(), rows, strict=True):
                listed[vid] = arn
            for vid, arn in self._extra_arn.items():
                listed[vid] = arn
            ids = {arn: vid for vid, arn in enumerate(listed) if arn is not None}
        # the columns stay: an index as opened can still be saved, and sorted by them
        self._list, self._dict = listed, ids
        self._extra, self._extra_arn = {}, {}


class LineageGraph:
    """The live lineage graph (vertices and visible edges) of one state of the projection.

    Built by :meth:`load`; :meth:`apply` brings it up to date with changed vertices and edges
    without a rebuild.
    """

    def __init__(self) -> None:
        self.arns = Arns()
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
        self.edges_used = 0  # edge ids in use; the arrays may be longer (room to grow)
        self.out_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.out_eid: Ints = _EMPTY
        self.in_ptr: Int64s = np.zeros(1, dtype=np.int64)
        self.in_eid: Ints = _EMPTY
        # the main CSR's far ends, slot by slot (out_nbr[i] = edge_dst[out_eid[i]]), so a walk
        # that needs no edge ids gathers vertices in one step
        self.out_nbr: Ints = _EMPTY
        self.in_nbr: Ints = _EMPTY
        self.clean = True
        """No edge of the main CSR is removed or leads to a vertex that is not live (then
        :meth:`neighbours` need not check)."""
        self.has_same_as = False
        # the overlay: edge ids past base_edges, sorted by their source (destination) id
        self.ov_out_key: Ints = _EMPTY
        self.ov_out_eid: Ints = _EMPTY
        self.ov_in_key: Ints = _EMPTY
        self.ov_in_eid: Ints = _EMPTY
        self._views: Views | None = None
        self.tracks_same_as = False
        """Whether the SameAs links are in the index (and :meth:`refresh` keeps them)."""
        self.persisted = False
        """Opened from the ids the projector keeps (:meth:`open`): :meth:`refresh` reads
        them too."""
        self.followed: tuple[str | None, int] = (None, 0)
        """(the projection's ``projection_id``, the newest batch of its ``graph_changes``)
        this index reflects, for :meth:`catch_up` (:meth:`open` only)."""
        self.changed = False
        """Whether :meth:`apply` changed it since it was made (then it is not saved)."""
        self.source = "loaded"
        """How it was made: ``loaded`` (:meth:`load`), ``opened`` (:meth:`open`) or
        ``saved`` (:meth:`from_saved`)."""

    # -- building ------------------------------------------------------------------------

    @classmethod
    def open(cls, con: duckdb.DuckDBPyConnection) -> LineageGraph | None:
        """The index of the projection from what the projector keeps for it (each vertex's
        id and row in ``graph_vertices``, each visible edge's ends as ids): column copies,
        no join and no sort of ARNs. None: the projection keeps none (a projection of an
        older schema; an account view), :meth:`load` it instead."""
        con.execute("BEGIN TRANSACTION")
        try:
            try:
                rows = con.execute("SELECT coalesce(max(vid), -1) + 1 FROM entity_state").fetchall()
                followed = _log_position(con)
            except (duckdb.CatalogException, duckdb.BinderException):
                return None
            n = int(rows[0][0])
            vertices = _table(
                con.sql(
                    "SELECT vid, arn, lineage_type, type, account_id, created_us, modified_us, "
                    "arn_hash FROM graph_vertices"
                ).to_arrow_table()
            )
            # artifacts that share their id with another (the ends of SameAs links): few
            shared = con.execute(
                "SELECT vid FROM graph_vertices WHERE same_key IN (SELECT same_key FROM "
                "graph_vertices WHERE same_key IS NOT NULL GROUP BY ALL HAVING count(*) > 1)"
            ).fetchall()
            edges = _table(
                con.sql(
                    "SELECT source_vid, destination_vid, association_type FROM visible_edges"
                ).to_arrow_table()
            )
        finally:
            con.execute("COMMIT")
        g = cls()
        g.tracks_same_as = g.persisted = True
        g.source = "opened"
        g.followed = followed
        vid = _int32(vertices.column(0))
        hashes = vertices.column(7).to_numpy().astype(np.uint64)
        arns = vertices.column(1)
        g.arns = Arns.of_columns(
            n,
            vid,
            pa.concat_arrays(arns.chunks) if arns.num_chunks else pa.array([], pa.string()),
            hashes,
        )
        g.lineage_type = np.full(n, -1, dtype=np.int8)
        g.lineage_type[vid] = vertices.column(2).to_numpy()
        types = _Codes.of(vertices.column(3))
        g.type, g.type_names = _scatter(types.codes, vid, n), types.names
        accounts = _Codes.of(vertices.column(4))
        g.account, g.account_names = _scatter(accounts.codes, vid, n), accounts.names
        g.created, g.has_created = _times_at(vertices.column(5), vid, n)
        g.modified, g.has_modified = _times_at(vertices.column(6), vid, n)
        src, dst = _int32(edges.column(0)), _int32(edges.column(1))
        et = _Codes.of(edges.column(2))
        a, b = g._same_as_links([v for (v,) in shared], src, dst)
        if len(a):
            et.codes = np.concatenate([et.codes, np.full(len(a), len(et.names), dtype=np.int32)])
            et.names.append("SameAs")
        g.edge_src, g.edge_dst = np.concatenate([src, a]), np.concatenate([dst, b])
        g.edge_type, g.edge_type_names = et.codes, et.names
        g.edge_live = np.ones(len(g.edge_src), dtype=bool)
        g.edge_same_as = np.zeros(len(g.edge_src), dtype=bool)
        g.edge_same_as[len(src) :] = True
        g._index_all()
        return g

    # -- a saved copy, for the next reader of the same projection -------------------------

    def save(self, path: Path) -> None:
        """Write this index (as :meth:`open` made it, before any :meth:`apply`) to the
        directory ``path``: numpy arrays and the ARN column, which :meth:`from_saved` maps
        back into memory without copying. Written beside ``path`` first, then renamed."""
        arns = self.arns
        if not self.persisted or self.changed or arns._column is None or arns._added:
            raise ValueError("only an index just opened from the projection can be saved")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            arrays = {name: getattr(self, name) for name in _SAVED_ARRAYS}
            arrays |= {"row_vid": arns._row_vid, "hashes": arns._hashes}
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            with pa.OSFile(str(tmp / "arns.arrow"), "wb") as sink:
                batch = pa.record_batch([arns._column], names=["arn"])
                with pa.ipc.new_file(sink, batch.schema) as writer:
                    writer.write_batch(batch)
            names = {
                "format": SAVED_FORMAT,
                "n": len(arns),
                "type_names": self.type_names,
                "account_names": self.account_names,
                "edge_type_names": self.edge_type_names,
                "clean": self.clean,
                "has_same_as": self.has_same_as,
                "followed": list(self.followed),
            }
            (tmp / "names.json").write_text(json.dumps(names))
            tmp.replace(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @classmethod
    def from_saved(cls, path: Path) -> LineageGraph:
        """An index :meth:`save` wrote (its arrays mapped from the files, copied only where
        :meth:`apply` writes). Raises OSError or ValueError when it is not one."""
        names = json.loads((path / "names.json").read_text())
        if names.get("format") != SAVED_FORMAT:
            raise ValueError(f"{path} holds an index of another format")
        g = cls()
        g.tracks_same_as = g.persisted = True
        g.source = "saved"

        def load(name: str) -> Any:
            # a plain array over the mapped file (numpy's memmap class costs a Python call
            # per indexing)
            mapped = np.load(path / f"{name}.npy", mmap_mode="c", allow_pickle=False)
            return mapped.view(np.ndarray)

        for name in _SAVED_ARRAYS:
            setattr(g, name, load(name))
        g.type_names, g.account_names = names["type_names"], names["account_names"]
        g.edge_type_names = names["edge_type_names"]
        g.clean, g.has_same_as = bool(names["clean"]), bool(names["has_same_as"])
        g.followed = (names["followed"][0], int(names["followed"][1]))
        column = pa.ipc.open_file(pa.memory_map(str(path / "arns.arrow"))).get_batch(0).column(0)
        n, m = int(names["n"]), len(g.edge_src)
        row_vid, hashes = load("row_vid"), load("hashes")
        lengths = {name: len(getattr(g, name)) for name in _SAVED_ARRAYS}
        wanted = {name: n for name, _ in _VERTEX_FILL}
        wanted |= dict.fromkeys(("edge_src", "edge_dst", "edge_type", "edge_live"), m)
        wanted |= {"edge_same_as": m, "out_eid": m, "in_eid": m, "out_nbr": m, "in_nbr": m}
        wanted |= {"out_ptr": n + 1, "in_ptr": n + 1}
        if lengths != wanted or not len(row_vid) == len(hashes) == len(column):
            raise ValueError(f"{path} holds arrays of the wrong lengths")
        if len(row_vid) and int(row_vid.max()) >= n:
            raise ValueError(f"{path} holds ids beyond its vertices")
        g.arns = Arns.of_columns(n, row_vid, column, hashes)
        g.edges_used = g.base_edges = m
        return g

    def _same_as_links(self, shared: list[int], src: Ints, dst: Ints) -> tuple[Ints, Ints]:
        """The SameAs links (a, b) among the live artifacts ``shared``: the same artifact id
        (the part of the ARN after ``artifact/``), different ARNs, and no edge from a to b
        already (as :func:`_same_as_pairs` says in SQL)."""
        if not shared:
            return _EMPTY, _EMPTY
        by_id: dict[str, list[int]] = {}
        for v in shared:
            by_id.setdefault(self.arns[v].split("/")[1], []).append(v)
        pairs = [(a, b) for group in by_id.values() for a in group for b in group if a != b]
        if not pairs:
            return _EMPTY, _EMPTY
        ends = np.array(pairs, dtype=np.int64)
        n = np.int64(max(len(self.arns), 1))
        at = np.isin(src, ends[:, 0])
        existing = src[at].astype(np.int64) * n + dst[at]
        keep = ~np.isin(ends[:, 0] * n + ends[:, 1], existing)
        return ends[keep, 0].astype(np.int32), ends[keep, 1].astype(np.int32)

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
        self.arns = Arns.of_list(vertices.column(0).to_pylist())
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
        self._views = None
        n = len(self.arns)
        m = self.edges_used = self.base_edges = len(self.edge_src)
        self.out_ptr, self.out_eid = _csr(self.edge_src[:m], n)
        self.in_ptr, self.in_eid = _csr(self.edge_dst[:m], n)
        self.out_nbr, self.in_nbr = self.edge_dst[self.out_eid], self.edge_src[self.in_eid]
        self.ov_out_key = self.ov_out_eid = self.ov_in_key = self.ov_in_eid = _EMPTY
        live = self.lineage_type
        self.clean = bool(
            self.edge_live[:m].all()
            and (live[self.edge_src[:m]] >= 0).all()
            and (live[self.edge_dst[:m]] >= 0).all()
        )
        self.has_same_as = bool(self.edge_same_as[:m].any())

    def _add_to_overlay(self, first: int, src: Ints, dst: Ints) -> None:
        """Edge ids ``first``.. (from ``src`` to ``dst``) into the overlay: merged into its
        sorted keys, so the cost is the overlay's size in memory moves, not the graph's."""
        self._views = None
        eids = np.arange(first, first + len(src), dtype=np.int32)
        for keys, which in ((src, "out"), (dst, "in")):
            order = _stable_order(keys)
            new_keys, new_eids = keys[order], eids[order]
            old_keys: Ints = getattr(self, f"ov_{which}_key")
            at = np.searchsorted(old_keys, new_keys, side="right")
            setattr(self, f"ov_{which}_key", np.insert(old_keys, at, new_keys))
            setattr(
                self, f"ov_{which}_eid", np.insert(getattr(self, f"ov_{which}_eid"), at, new_eids)
            )

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
        between the same two ends), ``gone_edges`` are not. Cost: the size of the change (new
        edges are merged into the overlay's sorted keys; past an eighth of the graph, the
        overlay is folded into the main CSR)."""
        with gc_paused():  # a collection over a warm index's millions of ARNs: ~60 ms at 1M
            self._apply(vertices, gone_vertices, edges, gone_edges, same_as=same_as)

    def _apply(
        self,
        vertices: pa.Table,
        gone_vertices: Iterable[str],
        edges: pa.Table,
        gone_edges: Iterable[tuple[str, str]],
        *,
        same_as: bool,
    ) -> None:
        self._views = None
        self.changed = True
        vertices, edges = _table(vertices), _table(edges)
        vertex_arns = vertices.column(0).to_pylist()
        edge_srcs, edge_dsts = edges.column(0).to_pylist(), edges.column(1).to_pylist()
        # one lookup per ARN of the change; ARNs never seen get the next ids
        ids = {a: self.arns.get(a) for a in dict.fromkeys(vertex_arns + edge_srcs + edge_dsts)}
        for arn, known_id in ids.items():
            if known_id is None:
                ids[arn] = self.arns.add(arn)
        self._grow()
        for arn in gone_vertices:
            gone = ids.get(arn, self.arns.get(arn))
            if gone is not None:
                self.lineage_type[gone] = -1
                self.clean = False
        if vertices.num_rows:
            vid = np.array([ids[a] for a in vertex_arns], dtype=np.int64)
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
        pairs = [(self.arns.get(x), self.arns.get(y)) for x, y in gone_edges]
        pairs += zip([ids[a] for a in edge_srcs], [ids[a] for a in edge_dsts], strict=True)
        known = [(a, b) for a, b in pairs if a is not None and b is not None]
        if known:
            ends = np.array(known, dtype=np.int64)
            n = np.int64(len(self.arns))
            srcs = np.unique(ends[:, 0]).astype(np.int32)
            eids, _, _ = self.steps(srcs, forward=True, backward=False)
            keys = self.edge_src[eids].astype(np.int64) * n + self.edge_dst[eids]
            removed = eids[np.isin(keys, ends[:, 0] * n + ends[:, 1])]
            self.edge_live[removed] = False
            self.clean = self.clean and not len(removed)
        if edges.num_rows:
            src = np.array([ids[a] for a in edge_srcs], dtype=np.int32)
            dst = np.array([ids[a] for a in edge_dsts], dtype=np.int32)
            typ = _codes_into(edges.column(2).to_pylist(), self.edge_type_names)
            first = self.edges_used
            self._room_for_edges(first + len(src))
            at = slice(first, first + len(src))
            self.edge_src[at], self.edge_dst[at], self.edge_type[at] = src, dst, typ
            self.edge_live[at], self.edge_same_as[at] = True, same_as
            self.has_same_as = self.has_same_as or same_as
            self.edges_used = first + len(src)
            if self.edges_used - self.base_edges > max(10_000, self.base_edges // 8):
                self.compact()
            else:
                self._add_to_overlay(first, src, dst)

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
        if self.persisted:
            self._refresh_by_id(con, arns, pairs)
            return
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

    def _refresh_by_id(
        self, con: duckdb.DuckDBPyConnection, arns: list[str], pairs: list[tuple[str, str]]
    ) -> None:
        """:meth:`refresh` of an index opened from the projection: rows read by ARN hash and
        by id from ``graph_vertices`` and ``visible_edges`` (integer columns), so the cost is
        the change's, not a scan of string columns."""
        ends = sorted(set(arns).union(*pairs)) if pairs else arns
        wanted = set(ends)
        ids = sorted({i for i in map(_artifact_id, ends) if i is not None})
        if not self.tracks_same_as:
            ids = []
        con.execute("BEGIN TRANSACTION")
        try:
            rows = [
                row
                for row in con.execute(
                    "SELECT vid, arn, lineage_type, type, account_id, created_us, modified_us "
                    "FROM graph_vertices WHERE arn_hash IN (SELECT unnest(?::UBIGINT[]))",
                    [[arn_hash(a) for a in ends]],
                ).fetchall()
                if row[1] in wanted
            ]
            # vertices new to the index (an edge end, too: it may have become live in a
            # batch the index has not caught up with) take the ids the projector gave them
            for vid, arn, *_ in rows:
                if self.arns.get(arn) is None:
                    self.arns.add(arn, int(vid))
            by_ids = {}
            for a, b in pairs:
                x, y = self.arns.get(a), self.arns.get(b)
                if x is not None and y is not None:
                    by_ids[(x, y)] = (a, b)
            found = con.execute(
                "SELECT source_vid, destination_vid, association_type FROM visible_edges "
                "WHERE source_vid IN (SELECT unnest(?::INTEGER[]))",
                [sorted({x for x, _ in by_ids})],
            ).fetchall()
            same = []
            if ids:
                same = con.execute(
                    "SELECT vid, arn FROM graph_vertices WHERE same_key IN "
                    "(SELECT unnest(?::UBIGINT[]))",
                    [[arn_hash(i) for i in ids]],
                ).fetchall()
                linked = {int(v) for v, _ in same}
                direct = set(
                    con.execute(
                        "SELECT source_vid, destination_vid FROM visible_edges WHERE "
                        "source_vid IN (SELECT unnest(?::INTEGER[]))",
                        [sorted(linked)],
                    ).fetchall()
                )
        finally:
            con.execute("COMMIT")
        touched = set(arns)
        live = [r for r in rows if r[1] in touched]
        table = pa.table(
            {
                "arn": pa.array([r[1] for r in live], pa.string()),
                "lineage_type": pa.array([LINEAGE_TYPES[r[2]] for r in live], pa.string()),
                "type": pa.array([r[3] for r in live], pa.string()),
                "c": pa.array([r[5] for r in live], pa.int64()),
                "m": pa.array([r[6] for r in live], pa.int64()),
                "account_id": pa.array([r[4] for r in live], pa.string()),
            }
        )
        visible = {(x, y): t for x, y, t in found if (x, y) in by_ids}
        edge_rows = [(*by_ids[k], t) for k, t in visible.items()]
        self.apply(
            table,
            [a for a in arns if a not in {r[1] for r in live}],
            _edge_table(edge_rows),
            [p for k, p in by_ids.items() if k not in visible]
            + [p for p in pairs if self.arns.get(p[0]) is None or self.arns.get(p[1]) is None],
        )
        if ids:
            groups: dict[str, list[tuple[int, str]]] = {}
            for vid, arn in same:
                artifact = _artifact_id(arn)
                if artifact in set(ids) and self.arns.get(arn) is not None:
                    groups.setdefault(artifact, []).append((int(vid), arn))
            links = [
                (a, b, "SameAs")
                for group in groups.values()
                for va, a in group
                for vb, b in group
                if va != vb and (va, vb) not in direct
            ]
            self._replace_same_as(set(ids), _edge_table(links))

    def _replace_same_as(self, ids: set[str], links: pa.Table) -> None:
        """The SameAs links of the artifact ids ``ids`` are now ``links``."""
        for eid in np.flatnonzero(self.edge_same_as & self.edge_live).tolist():
            if _artifact_id(self.arns[int(self.edge_src[eid])]) in ids:
                self.edge_live[eid] = False
                self.clean = False
        self.apply(_NO_VERTICES, [], links, [], same_as=True)

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
        self._replace_same_as(set(ids), wanted)

    def catch_up(self, con: duckdb.DuckDBPyConnection, *, limit: int | None = None) -> bool | None:
        """Apply what the projection's ``graph_changes`` lists since this index was made
        (or last caught up): the cost of the change. Returns whether anything changed, or
        None when the index cannot follow (another projection, e.g. after a replay; the log
        no longer reaches back that far; or more than ``limit`` changes): open a new one."""
        con.execute("BEGIN TRANSACTION")
        try:
            projection, newest = _log_position(con)
            oldest = con.execute("SELECT min(batch) FROM graph_changes").fetchall()[0][0]
            since = self.followed[1]
            if projection != self.followed[0] or newest < since:
                return None
            if newest == since:
                return False
            if oldest is None or oldest > since + 1:
                return None
            rows = con.execute(
                "SELECT entity_key, is_edge FROM graph_changes WHERE batch > ? AND batch <= ?",
                [since, newest],
            ).fetchall()
            if limit is not None and len(rows) > limit:
                return None
        finally:
            con.execute("COMMIT")
        vertices = [key for key, is_edge in rows if not is_edge]
        edges = [tuple(key.split(" ", 1)) for key, is_edge in rows if is_edge]
        # read in a later transaction: the state then, at least as new as the log's rows
        self.refresh(con, vertices, [(a, b) for a, b in edges])
        self.followed = (projection, newest)
        return True

    def compact(self) -> None:
        """Fold the overlay and the removed edges into one CSR again."""
        keep = np.flatnonzero(self.edge_live[: self.edges_used])
        self.edge_src, self.edge_dst = self.edge_src[keep], self.edge_dst[keep]
        self.edge_type = self.edge_type[keep]
        self.edge_same_as = self.edge_same_as[keep]
        self.edge_live = np.ones(len(keep), dtype=bool)
        self._index_all()

    def _id(self, arn: str) -> int:
        vid = self.arns.get(arn)
        if vid is None:
            raise KeyError(f"{arn} has no id in the index")
        return vid

    def _grow(self) -> None:
        """Vertex arrays at least as long as the ids given, with room to grow (doubling, so
        adding ids costs their number on average; ids past those given are not vertices)."""
        need = len(self.arns)
        if need <= len(self.lineage_type):
            return
        size = max(need, 2 * len(self.lineage_type))
        for name, fill in _VERTEX_FILL:
            old = getattr(self, name)
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def _room_for_edges(self, need: int) -> None:
        """Edge arrays at least ``need`` long (doubling; edge ids past ``edges_used`` are not
        live and in no CSR)."""
        if need <= len(self.edge_src):
            return
        size = max(need, 2 * len(self.edge_src))
        for name in ("edge_src", "edge_dst", "edge_type", "edge_live", "edge_same_as"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

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
        vid = self.arns.get(arn)
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

    def neighbours(self, frontier: Ints, forward: bool, backward: bool, *, same_as: bool) -> Ints:
        """The far ends (with repeats) of the live edges at ``frontier`` in the given
        directions that lead to live vertices, SameAs links only with ``same_as``: what
        :meth:`steps` gives as its last array, with the check, in one gather per CSR while
        the main one is :attr:`clean` (and holds no SameAs link a walk must skip)."""
        if not self.clean or (self.has_same_as and not same_as):
            e, _, v = self.steps(frontier, forward, backward)
            keep = self.lineage_type[v] >= 0
            if not same_as:
                keep &= ~self.edge_same_as[e]
            far: Ints = v[keep]
            return far
        parts = []
        for wanted, ptr, nbr, keys, eids, ends in (
            (forward, self.out_ptr, self.out_nbr, self.ov_out_key, self.ov_out_eid, self.edge_dst),
            (backward, self.in_ptr, self.in_nbr, self.ov_in_key, self.ov_in_eid, self.edge_src),
        ):
            if not wanted:
                continue
            parts.append(nbr[_slots(ptr, frontier)[0]])
            if len(keys):  # the overlay: edge ids, checked
                e, _ = _gather_sorted(keys, eids, frontier)
                e = e[self.edge_live[e]]
                if not same_as:
                    e = e[~self.edge_same_as[e]]
                v = ends[e]
                parts.append(v[self.lineage_type[v] >= 0])
        parts = [p for p in parts if len(p)]
        if not parts:
            return _EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def steps(self, frontier: Ints, forward: bool, backward: bool) -> tuple[Ints, Ints, Ints]:
        """Every live edge at ``frontier`` in the given directions, as (edge id, the frontier
        vertex it leaves from, the vertex it leads to)."""
        parts: list[tuple[Ints, Ints, Ints]] = []
        if forward:
            for e, u in (
                _gather(self.out_ptr, self.out_eid, frontier),
                _gather_sorted(self.ov_out_key, self.ov_out_eid, frontier),
            ):
                parts.append((e, u, self.edge_dst[e]))
        if backward:
            for e, u in (
                _gather(self.in_ptr, self.in_eid, frontier),
                _gather_sorted(self.ov_in_key, self.ov_in_eid, frontier),
            ):
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

    def reach(
        self, start: str, max_depth: int, forward: bool
    ) -> list[tuple[str, int, str | None, str | None]]:
        """The walk of the SQL macros ``lineage_descendants`` (``forward``) and
        ``lineage_ancestors``: (ARN, least depth, lineage type, type) of every vertex
        reached from ``start`` along edges one way, at most ``max_depth`` edges away, the
        start left out, by (depth, ARN). SameAs links are not followed (the operator's walk;
        an account view's index holds them as edges)."""
        first = self.vid(start)
        if first is None or max_depth < 1:
            return []
        seen = np.zeros(len(self.arns), dtype=bool)
        seen[first] = True
        frontier = np.array([first], dtype=np.int32)
        out: list[tuple[str, int, str | None, str | None]] = []
        names, lts = [*self.type_names, None], [*LINEAGE_TYPES, None]
        for d in range(1, max_depth + 1):
            e, _, v = self.steps(frontier, forward, not forward)
            v = v[(self.lineage_type[v] >= 0) & ~self.edge_same_as[e]]
            v = np.unique(v[~seen[v]])
            if not len(v):
                break
            seen[v] = True
            level = [
                (self.arns[x], d, lts[lt], names[t])
                for x, lt, t in zip(
                    v.tolist(), self.lineage_type[v].tolist(), self.type[v].tolist(), strict=True
                )
            ]
            out += sorted(level)
            frontier = v
        return out

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
        self.edge_type = g.edge_type.data
        self.type = g.type.data
        self.account = g.account.data
        # (pointers or sorted keys, edge ids, whether sorted keys): the main CSR, then the
        # overlay, whose edges of a vertex are found by bisecting its keys
        self.out_csrs = [
            (p.data, e.data, sparse)
            for p, e, sparse in ((g.out_ptr, g.out_eid, False), (g.ov_out_key, g.ov_out_eid, True))
            if len(e)
        ]
        self.in_csrs = [
            (p.data, e.data, sparse)
            for p, e, sparse in ((g.in_ptr, g.in_eid, False), (g.ov_in_key, g.ov_in_eid, True))
            if len(e)
        ]


def _log_position(con: duckdb.DuckDBPyConnection) -> tuple[str | None, int]:
    """(``projection_id``, the newest batch in ``graph_changes``) of the projection."""
    row = con.execute(
        "SELECT (SELECT value FROM mlineage_meta WHERE key = 'projection_id'), "
        "(SELECT coalesce(max(batch), 0) FROM graph_changes)"
    ).fetchall()[0]
    return (None if row[0] is None else str(row[0]), int(row[1]))


def _same_as_pairs(vertices: str, edges: str, where: str, *, by: str = "vid") -> str:
    """FROM-clause of the SameAs pairs (``a``, ``b``): two live artifacts with the same id
    (the part after ``artifact/``) and different ARNs, where no edge runs from a to b."""
    return (
        f"{vertices} a JOIN {vertices} b ON a.lineage_type = 'Artifact' "
        "AND b.lineage_type = 'Artifact' AND split_part(a.arn, '/', 2) = "
        f"split_part(b.arn, '/', 2) AND a.{by} <> b.{by} WHERE {where} AND NOT EXISTS "
        f"(SELECT 1 FROM {edges} e WHERE e.source_arn = a.arn AND e.destination_arn = b.arn)"
    )


def _edge_table(rows: Sequence[tuple[str, str, str | None]]) -> pa.Table:
    """Edges as :meth:`LineageGraph.apply` takes them."""
    return pa.table(
        {
            "source_arn": pa.array([r[0] for r in rows], pa.string()),
            "destination_arn": pa.array([r[1] for r in rows], pa.string()),
            "association_type": pa.array([r[2] for r in rows], pa.string()),
        }
    )


def _artifact_id(arn: str) -> str | None:
    _, sep, tail = arn.partition(":artifact/")
    return tail if sep else None


def _table(data: Any) -> pa.Table:
    # DuckDB hands back a RecordBatchReader or a Table depending on the version
    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data


def _scatter(values: Ints, vid: Ints, n: int) -> Ints:
    """``values`` of rows placed at their ids, over ``n`` ids (-1 elsewhere)."""
    out = np.full(n, -1, dtype=np.int32)
    out[vid] = values
    return out


def _int32(column: pa.ChunkedArray) -> Ints:
    ids: Ints = column.to_numpy().astype(np.int32)
    return ids


def _times(column: pa.ChunkedArray) -> tuple[Int64s, Bools]:
    has: Bools = column.is_valid().to_numpy(zero_copy_only=False)
    values: Int64s = column.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return values, has


def _times_at(column: pa.ChunkedArray, vid: Ints, n: int) -> tuple[Int64s, Bools]:
    """A time column's values and validity placed at the rows' ids, over ``n`` ids."""
    values, has = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    values[vid], has[vid] = _times(column)
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
