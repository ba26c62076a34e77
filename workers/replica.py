"""A node's read copy of the catalog's serving vectors: what recommenders search.

    Catalog (one writer) ──changes_since(cursor), every sync_interval──► CatalogReplica
    recommenders on this node ──lookup / search_at──► CatalogReplica (version, answer)

Every recommender reads the replica on its own node, so reads scale with nodes and the
writer only answers each replica's polls (a rate set by ``sync_interval``, whatever the
event rate). A replica serves one whole version at a time: a new model version (or a
restarted writer) arrives as a snapshot that is loaded aside and swapped in, so a read
never sees two versions. Versions only move forward. It lags the writer by at most one
poll; a read that misses an item polls at once (rate-limited), so an event on an item
indexed a moment ago usually finds it. A deleted item leaves the copy on the next poll
(the feed carries deleted ids), so it is searched at most one poll after its delete.

A plain class (tests call it directly); `workers.actors` makes it a per-node actor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from threadpoolctl import threadpool_limits

from workers.catalog import Changes, Cursor
from workers.config import StoreConfig
from workers.store import SearchRequest, StoreError
from workers.store.matrix import MatrixIndex
from workers.wire import HitLists, VectorMap

log = logging.getLogger(__name__)

#: A read that misses an item polls the writer at most this often.
MISS_POLL_GAP = 0.02


class ChangeSource(Protocol):
    def changes_since(self, cursor: Cursor | None) -> Changes: ...


class ReplicaNotReady(StoreError):
    """No copy yet (the writer has not answered since this replica started): transient."""


class CatalogReplica:
    """Serving vectors of the catalog at one version, in an exact in-memory index
    (`MatrixIndex`), kept current by a polling thread."""

    def __init__(self, source: ChangeSource, dim: int, config: StoreConfig) -> None:
        self.source, self.dim, self.config = source, dim, config
        # The process's BLAS pool (not a context: the searches run on other calls).
        threadpool_limits(limits=config.search_threads, user_api="blas")
        self.cursor: Cursor | None = None
        self.store: MatrixIndex | None = None
        self.read_lock = threading.Lock()  # the store and cursor, as readers see them
        self.sync_lock = threading.Lock()  # one poll at a time
        self.last_poll = 0.0
        self.stopped = threading.Event()
        self.poll()  # a first copy before serving (a writer that is down: the thread retries)
        threading.Thread(target=self._follow, name="replica-follow", daemon=True).start()

    def _follow(self) -> None:
        while not self.stopped.wait(self.config.sync_interval):
            try:
                self.poll()
            except Exception:  # a copy that cannot be applied: keep serving the last one
                log.exception("replica could not apply the catalog's changes; retrying")

    def poll(self) -> bool:
        """Apply what the writer changed since this copy; False if it did not answer."""
        with self.sync_lock:
            self.last_poll = time.monotonic()
            try:
                changes = self.source.changes_since(self.cursor)
            except Exception as exc:  # the writer is restarting or unreachable: keep serving
                log.warning("catalog did not answer this replica's poll: %s", exc)
                return False
            self._apply(changes)
            return True

    def _apply(self, changes: Changes) -> None:
        now = self.cursor
        if now is not None and changes.cursor.version < now.version:
            log.warning(
                "catalog answered at version %d below this copy's %d: ignored",
                changes.cursor.version,
                now.version,
            )
            return
        if not changes.snapshot:
            with self.read_lock:
                if changes.ids:
                    self._store().upsert_columns(changes.ids, changes.scenarios, changes.matrix)
                if changes.removed:  # disjoint from the points: the order does not matter
                    self._store().delete(changes.removed)
                self.cursor = changes.cursor
            return
        # A whole catalog: loaded aside, then swapped in, so readers see one version.
        store = MatrixIndex(self.dim, capacity=len(changes.ids))
        store.upsert_columns(changes.ids, changes.scenarios, changes.matrix)
        with self.read_lock:
            self.store, self.cursor = store, changes.cursor
        log.info(
            "replica at catalog version %d: %d items", changes.cursor.version, len(changes.ids)
        )

    def _store(self) -> MatrixIndex:
        return self._current()[1]

    def _current(self) -> tuple[int, MatrixIndex]:
        """(version, store) of the copy served now (call with ``read_lock`` held)."""
        if self.store is None or self.cursor is None:
            raise ReplicaNotReady("this node's catalog copy has not been loaded yet")
        return self.cursor.version, self.store

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, VectorMap]:
        """(model version, {item_id: serving vector}) read together."""
        version, found = self._lookup(item_ids)
        if len(found) < len(set(item_ids)) and time.monotonic() - self.last_poll > MISS_POLL_GAP:
            self.poll()  # indexed a moment ago?
            version, found = self._lookup(item_ids)
        return version, found

    def _lookup(self, item_ids: Sequence[str]) -> tuple[int, VectorMap]:
        with self.read_lock:
            version, store = self._current()
            return version, store.vectors(item_ids, using="rec")

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, HitLists]:
        """(model version, hits) read together (both pickle compactly: `workers.wire`)."""
        with self.read_lock:
            version, store = self._current()
            return version, store.search(requests)

    def version(self) -> int:
        """The model version served (-1 before the first copy): also the health check."""
        with self.read_lock:
            return -1 if self.cursor is None else self.cursor.version

    def close(self) -> None:
        self.stopped.set()
        with self.read_lock:
            self.store = None
