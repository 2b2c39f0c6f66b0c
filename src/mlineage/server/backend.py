"""What the API server stands on: the event log (writes) and a projection it owns (reads).

- **Writes are events.** Each write becomes ``EntityUpserted`` / ``EntityDeleted`` events,
  validated by the models, appended to the configured log (SQLite or Kafka), and then the
  server's projection catches up (on the embedded log the tracker runs too), so the answer
  to a write is sent only once a Describe would see it. Writes run one at a time (one lock),
  so "already exists" and "not found" checks stay true until the write lands.
- **Reads** go to the projection, one store for every caller: for an authenticated caller
  Describe, List and ListAssociations filter by the accounts it sees (its own and its live
  grantors', :func:`mlineage.query.accounts.visible_accounts`) in the query, and QueryLineage
  in the walk of the one graph index; nothing is copied per account, so one tenant's
  writes cost another tenant's reads nothing but the index update they all share.
- The server owns its DuckDB file (``MLINEAGE_DB``): exactly one projector per file. With
  Kafka it is a projector of its own, beside any ``mlineage project --follow`` on another
  file.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlineage import failpoints
from mlineage.arns import entity_key
from mlineage.errors import EventLogError
from mlineage.events.codec import validate_record
from mlineage.events.models import AnyEvent, EntityDeleted, EntityUpserted
from mlineage.log.base import EventLog, OutRecord, open_log
from mlineage.log.outage import Outage
from mlineage.pipeline import sync
from mlineage.projection import schema
from mlineage.projection.service import Snapshotter
from mlineage.projection.store import DuckDBStore, snapshot_path
from mlineage.query import search
from mlineage.query.accounts import visible_accounts
from mlineage.query.store import LineageStore
from mlineage.recorder import complete, route
from mlineage.settings import Settings

log = logging.getLogger("mlineage.serve")
T = TypeVar("T")
PRODUCER = "mlineage-serve"


class Backend:
    def __init__(self, settings: Settings, *, log: EventLog | None = None) -> None:
        self.settings = settings
        self.log = log or open_log(settings.log_url)
        self.store = DuckDBStore(settings.db_path)
        # reads keep their lineage graph and apply what each write batch changed
        self.store.track_graph_changes()
        self._db = threading.RLock()  # the writer's DuckDB connection: one user at a time
        self._reads = threading.RLock()  # the readers' connection and caches
        self._queue: queue.Queue[tuple[Callable[[WriteTx], Any], Future[Any]]] = queue.Queue()
        self.version = 0
        self._operator: LineageStore | None = None
        # other processes (the CLI) read this while serve holds the file
        self.snapshotter = Snapshotter(self.store, snapshot_path(settings.db_path))
        self.catch_up()
        threading.Thread(target=self._writer, daemon=True, name="mlineage-serve-writer").start()

    def write_snapshot(self, *, force: bool = False) -> None:
        """Refresh the readers' snapshot: now, or when due (see :class:`Snapshotter`)."""
        with self._db:
            if force:
                self.snapshotter.write()
            else:
                self.snapshotter.maybe()

    # -- writes ---------------------------------------------------------------------------

    def write(self, fn: Callable[[WriteTx], T]) -> T:
        """Run ``fn`` (checks, then :meth:`WriteTx.publish`) in the next write batch and return
        its result once the projection shows what it published. Concurrent writes are
        group-committed: one append and one catch-up for every write waiting, each checked
        against what the writes before it in the batch did."""
        done: Future[T] = Future()
        self._queue.put((fn, done))
        return done.result()

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Callable[[WriteTx], Any], Future[Any]]]) -> None:
        pending = Pending()
        staged: list[OutRecord] = []
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        with self._db:
            for fn, done in batch:
                tx = WriteTx(self, pending)
                try:
                    result = fn(tx)
                except BaseException as exc:
                    outcomes.append((done, None, exc))
                    continue
                staged.extend(tx.records)
                pending.update(tx.done)
                outcomes.append((done, result, None))
            failure: BaseException | None = None
            if staged:
                try:
                    self.log.append(staged)
                except BaseException as exc:
                    failure = exc  # nothing was written: every writer of the batch hears it
                else:
                    failpoints.hit("serve.after_append")
                    try:
                        self.catch_up()
                    except Exception as exc:
                        # written to the log, so it is done: failing it would make a client
                        # retry into "already exists"; the follow loop projects it shortly
                        log.warning("projecting a write batch failed (retried): %r", exc)
        for done, result, own_error in outcomes:
            error = own_error or failure
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

    def catch_up(self) -> bool:
        """Apply what is new in the log (others publish too); True when anything was."""
        with self._db:
            stats = sync(self.settings, log=self.log, store=self.store)
            if stats.tracker.consumed or stats.projector.consumed or self.version == 0:
                self.version += 1
                self.snapshotter.dirty = True
                return True
        return False

    def follow(self, interval: float = 1.0) -> threading.Event:
        """Catch up with the log every ``interval`` seconds in a background thread (others
        publish too: training jobs, the tracker); set the returned event to stop it."""
        stop = threading.Event()
        outage = Outage(f"serve: the event log {self.log.kind}")

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.catch_up()
                    self.write_snapshot()
                except EventLogError as exc:
                    if not exc.transient:
                        log.warning("catching up with the log failed: %r", exc)
                    outage.failed(exc)  # said once; writes answer 503 meanwhile
                except Exception as exc:
                    log.warning("catching up with the log failed: %r", exc)
                else:
                    outage.over()

        threading.Thread(target=loop, daemon=True, name="mlineage-serve-follow").start()
        return stop

    # -- reads ----------------------------------------------------------------------------

    def read(self, account: str | None, fn: Callable[[LineageStore, list[str] | None], T]) -> T:
        """Run ``fn(store, visible_accounts)`` on the operator's store: reads on behalf of
        ``account`` (None: the operator) filter by the accounts it sees in the query and in
        the graph walk, with the answer of its account view, copying nothing. Reads use a
        connection of their own (DuckDB's MVCC: they see committed batches), so they do not
        wait for a write batch to finish."""
        with self._reads:
            store = self._operator_store()
            visible = None if account is None else visible_accounts(store.con, account)
            return fn(store, visible)

    def _operator_store(self) -> LineageStore:
        if self._operator is None or self._operator_version != self.version:
            graph = None
            if self._operator is not None:
                graph = self._operator.loaded_graph
                self._operator.close()
            version = self.version  # changes taken after: none of this version's is missed
            changes = self.store.take_graph_changes()
            self._operator = LineageStore(self.store.con.cursor(), self.settings.db_path)
            if graph is not None and changes is not None and not changes.overflowed:
                graph.refresh(self._operator.con, changes.vertices, changes.edges)
                self._operator.loaded_graph = graph
            self._operator_version = version
        return self._operator

    _operator_version = -1

    def owner(self, key: str) -> str | None:
        """The account owning the live entity with this key (None: no such live entity)."""
        with self._db:
            rows = self.store.con.execute(
                f"SELECT account_id FROM entity_state s WHERE entity_key = ? AND "
                f"{schema.live('s')}",
                [key],
            ).fetchall()
        return str(rows[0][0]) if rows else None

    def tag_keys(self, kind: str, key: str) -> frozenset[str]:
        """The tag keys of the live entity with this key in the projection."""
        with self._db:
            return frozenset(search.tag_keys(self.store.con, kind, key))

    def stored_name(self, kind: str, key: str) -> str | None:
        """The name of the live entity as it was written (a trial component's ARN holds it
        in lower case)."""
        with self._db:
            return search.stored_name(self.store.con, kind, key)

    def close(self) -> None:
        with self._db, self._reads:
            if self._operator is not None:
                self._operator.close()
            self.store.close()
            self.log.close()


@dataclass
class Pending:
    """What the writes of a batch did before the current one: owners (None: deleted), tag
    keys and names of the entities they wrote (the projection shows them only after the
    batch)."""

    owners: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def update(self, other: Pending) -> None:
        self.owners.update(other.owners)
        self.tags.update(other.tags)
        self.names.update(other.names)


class WriteTx:
    """One write of a batch: what it checks sees the projection plus the writes before it in
    the batch; what it publishes is validated now and appended with the batch."""

    def __init__(self, backend: Backend, before: Pending) -> None:
        self.backend = backend
        self.before = before
        self.records: list[OutRecord] = []
        self.done = Pending()

    def owner(self, key: str) -> str | None:
        """The account owning the live entity (None: there is none)."""
        for pending in (self.done, self.before):
            if key in pending.owners:
                return pending.owners[key]
        return self.backend.owner(key)

    def live(self, key: str) -> bool:
        return self.owner(key) is not None

    def visible(self, view: str | None, key: str, can_see: Callable[[str], bool]) -> bool:
        """Whether the caller sees the entity: one created earlier in the batch counts when
        its owner is the caller (or the caller is the operator)."""
        pending = self.done.owners.get(key, self.before.owners.get(key, ""))
        if pending != "":
            return pending is not None and (view is None or pending == view)
        return can_see(key)

    def tag_keys(self, kind: str, key: str) -> frozenset[str]:
        """The tag keys of the live entity, with the batch's writes."""
        if not self.live(key):
            return frozenset()
        for pending in (self.done, self.before):
            if key in pending.tags:
                return pending.tags[key]
        return self.backend.tag_keys(kind, key)

    def name(self, kind: str, key: str) -> str | None:
        """The live entity's name as written (with the batch's writes)."""
        for pending in (self.done, self.before):
            if key in pending.names:
                return pending.names[key]
        return self.backend.stored_name(kind, key)

    def publish(
        self, account: str, drafts: Sequence[Mapping[str, Any]], effects: Mapping[str, str | None]
    ) -> list[AnyEvent]:
        """Validate ``drafts`` for ``account`` (EventValidationError now, to this caller) and
        stage them; ``effects``: key -> owner after this write (None: deleted)."""
        events = [
            validate_record(complete({**d, "account_id": account}, self.backend.settings, PRODUCER))
            for d in drafts
        ]
        for event in events:
            self._note(event)
        self.records.extend(route(e) for e in events)
        self.done.owners.update(effects)
        return events

    def _note(self, event: AnyEvent) -> None:
        """Keep the tag keys and the name an event leaves its entity with."""
        if isinstance(event, EntityDeleted):
            self.done.tags[entity_key(event.payload, event.account_id, event.region)] = frozenset()
            return
        if not isinstance(event, EntityUpserted):
            return
        entity = event.payload.entity
        key = entity_key(entity, event.account_id, event.region)
        name = getattr(entity, f"{entity.kind}_name", None)
        if isinstance(name, str):
            self.done.names[key] = name
        added = getattr(entity, "tags", None)
        removed = getattr(entity, "tags_to_remove", None)
        if added is None and removed is None:
            return
        keys = set(self.tag_keys(entity.kind, key))
        keys |= {t.key for t in added or []}
        keys -= set(removed or [])
        self.done.tags[key] = frozenset(keys)
