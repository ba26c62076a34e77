"""The catalog: the vector store of every item, at one model version.

    catalog agent ──index(items, base vectors)──► Catalog ──► vector store (Qdrant)
    catalog agent ──delete(item ids)──► Catalog ──► removed from the store
    trainer ──publish(v, files)──► Catalog: keeps version v on its disk, every item's
                                   rec = model v's projection of its base vector
    node replicas ──changes_since(cursor)──► the serving vectors changed and the ids
                                             removed since, or all
    trainer ──indexed_since(log, position)──► ids indexed since (then items(ids) for their
                                              base vectors): it learns the whole catalog
    recommenders ──adapter(v)──► v's files (when they move to version v)

The catalog is the one writer; it is off the per-event path: recommenders read a copy on
their own node (`workers.replica`), which follows this one through `changes_since`.
Published versions travel as files through this actor (the one writer of both the store
and the versions), so the trainer and the recommenders need no shared directory.

A plain class (tests call it directly); `workers.actors` makes it the store actor.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.adapters.io import (
    AdapterFiles,
    latest_version,
    prune_versions,
    read_files,
    save_files,
)
from workers.adapters.rounds import append_round
from workers.config import AdapterStoreConfig, StoreConfig
from workers.model import ServingModel, Vector, model_of
from workers.store import Hit, ItemPoint, SearchRequest, open_store
from workers.store.matrix import MatrixIndex

log = logging.getLogger(__name__)

#: Items per forward pass of a re-projection.
_PAGE = 1000


@dataclass(frozen=True)
class CatalogItem:
    """An item to index: the contract fields the store keeps."""

    item_id: str
    text: str
    scenario: str = "default"


@dataclass(frozen=True)
class ServingPoint:
    """What a read replica keeps of an item: its id, scenario and serving vector."""

    item_id: str
    scenario: str
    rec: Vector


@dataclass(frozen=True)
class Cursor:
    """How far a reader has followed the catalog: the writer's incarnation (``epoch``,
    new at every start), its model version, and its change number."""

    epoch: str
    version: int
    seq: int


@dataclass(frozen=True)
class Changes:
    """The answer to `Catalog.changes_since`: serving points to upsert (as columns: ids,
    scenarios and one float32 matrix, row n being ``ids[n]``'s), ids to remove (never
    also among the points), and the cursor after them; with ``snapshot`` the points are
    the whole catalog (replace, not add) and nothing is removed.

    Columns all the way: a 100k-item snapshot pickles as one buffer and two lists of
    strings, and a replica loads it with array operations, never 100k objects made
    while its process holds the interpreter lock that its readers wait on
    (BENCHMARKS.md, hot swap)."""

    cursor: Cursor
    ids: list[str]
    scenarios: list[str]
    matrix: Vector  # (len(ids), dim) float32; (0, 0) when there are no points
    snapshot: bool
    removed: list[str] = field(default_factory=list)

    @classmethod
    def of_points(
        cls,
        cursor: Cursor,
        points: Sequence[ServingPoint],
        snapshot: bool,
        removed: Sequence[str] = (),
    ) -> Changes:
        matrix = (
            np.stack([p.rec for p in points]).astype(np.float32, copy=False)
            if points
            else np.zeros((0, 0), dtype=np.float32)
        )
        return cls(
            cursor,
            [p.item_id for p in points],
            [p.scenario for p in points],
            matrix,
            snapshot,
            list(removed),
        )

    @property
    def points(self) -> list[ServingPoint]:
        """The points as objects (for a few; a replica reads the columns)."""
        return [
            ServingPoint(i, s, self.matrix[n])
            for n, (i, s) in enumerate(zip(self.ids, self.scenarios, strict=True))
        ]


#: One entry of the change feed: (change number, points upserted, item ids deleted).
FeedEntry = tuple[int, list[ServingPoint], list[str]]


def net_changes(entries: Sequence[FeedEntry]) -> tuple[list[ServingPoint], list[str]]:
    """Feed entries, oldest first -> (points to upsert, ids to remove): each id's last
    change wins (an item deleted then indexed again is upserted, and the reverse)."""
    last: dict[str, ServingPoint | None] = {}
    for _, points, removed in entries:
        for point in points:
            last.pop(point.item_id, None)  # re-inserted: keeps the order of last change
            last[point.item_id] = point
        for item_id in removed:
            last.pop(item_id, None)
            last[item_id] = None
    upserts = [p for p in last.values() if p is not None]
    return upserts, [k for k, p in last.items() if p is None]


class Catalog:
    """Owns the vector store (one per cluster for the in-process Qdrant engine).

    It also owns the catalog's model version: every item's ``rec`` vector is the
    projection of its ``base`` vector by the adapter of `version`. Moving to a new
    version re-projects the whole catalog inside one call, and the actor runs one call
    at a time, so a reader sees the catalog wholly at one version; every read returns
    the version it saw, so a server can tell when it must follow.

    Beside the store it keeps every item's base and serving vectors as two matrices
    (`MatrixIndex`), read from the store once at start and written with it: the
    re-projections, lookups and replicas' snapshots use them, never a scan. The store
    stays what a restart reads.
    """

    def __init__(self, config: StoreConfig, dim: int, adapters: AdapterStoreConfig) -> None:
        api_key = config.api_key.get_secret_value() if config.api_key is not None else None
        self.store = open_store(
            config.url,
            dim=dim,
            collection=config.collection,
            api_key=api_key,
            ca_file=config.ca_file,
        )
        self.adapters = adapters
        self.dim = dim
        # The change feed replicas follow: (change number, points, removed ids) of recent
        # index and delete calls, at most ``config.feed_size`` points and ids; a reader
        # further behind gets a snapshot.
        self.epoch = uuid.uuid4().hex
        self.seq = 0
        self.feed: deque[FeedEntry] = deque()
        self.feed_points = 0
        self.feed_size = config.feed_size
        self.snapshot: Changes | None = None  # the last one made, while it is current
        # The store's base and serving vectors as matrices beside it (`_load_mirror`),
        # and every id indexed, in order (the trainer follows it), with the log's
        # identity: a new one at every start and whenever the log is compacted.
        self.base = MatrixIndex(dim)
        self.serving = MatrixIndex(dim)
        self.indexed: list[str] = self._load_mirror()
        self.indexed_log = uuid.uuid4().hex
        self.model: ServingModel = self._model(0, None)
        latest = latest_version(adapters.path)
        if latest is not None:  # a restart resumes at the newest published version
            self._reproject(self._model(latest, read_files(adapters.path, latest)))

    def _load_mirror(self) -> list[str]:
        """Read the store once (at start): every item's base and serving vectors into the
        matrices that re-projections, lookups and snapshots use, so none of them scans
        the store again (at 100k items a scan is ~4-5 s of records turned into points,
        BENCHMARKS.md, session 26). Returns the ids in the store's order."""
        ids: list[str] = []
        for page in self.store.scan():
            names = [p.item_id for p in page]
            scenarios = [p.scenario for p in page]
            self.base.upsert_columns(names, scenarios, np.stack([p.base for p in page]))
            self.serving.upsert_columns(names, scenarios, np.stack([p.rec for p in page]))
            ids.extend(names)
        return ids

    def _model(self, version: int, files: AdapterFiles | None) -> ServingModel:
        # The catalog only projects items: the user aggregator's recency is not used.
        return model_of(version, files, dim=self.dim, recency=1.0)

    def publish(self, version: int, files: AdapterFiles) -> int:
        """Make ``version`` (its adapter files) the catalog's: kept on this actor's disk,
        every item re-projected; returns the version now served (never backwards)."""
        if version <= self.model.version:
            return self.model.version
        model = self._model(version, files)  # a bad version fails before anything changes
        on_disk = latest_version(self.adapters.path)
        if on_disk is None or on_disk < version:  # (a retried publish finds it there)
            save_files(files, self.adapters.path, version)
        self._reproject(model)
        prune_versions(self.adapters.path, self.adapters.keep)
        return version

    def log_round(self, entry: Mapping[str, Any]) -> None:
        """Keep one training round's entry (a gate decision) beside the versions."""
        append_round(self.adapters.path, entry)

    def adapter(self, version: int) -> AdapterFiles | None:
        """The files of a published ``version`` (None for 0, the frozen model)."""
        return None if version == 0 else read_files(self.adapters.path, version)

    def latest(self) -> tuple[int, AdapterFiles | None]:
        """(the version served, its files): where a restarted trainer resumes."""
        return self.model.version, self.adapter(self.model.version)

    def index(self, items: Sequence[CatalogItem], base: Vector) -> int:
        """Upsert items with their language-model vectors; returns the catalog size."""
        if len(items) != len(base):
            raise ValueError(f"{len(items)} items but {len(base)} vectors")
        matrix = np.asarray(base, dtype=np.float32)
        rec = self.model.item_vectors(
            [i.item_id for i in items], matrix, [i.scenario for i in items]
        )
        points = [
            ItemPoint(i.item_id, i.scenario, i.text, matrix[n], rec[n]) for n, i in enumerate(items)
        ]
        self.store.upsert(points)  # the store keeps the last record of a repeated id
        ids, scenarios = [i.item_id for i in items], [i.scenario for i in items]
        self.base.upsert_columns(ids, scenarios, matrix)  # (so do these)
        self.serving.upsert_columns(ids, scenarios, rec)
        self._record([ServingPoint(p.item_id, p.scenario, p.rec) for p in points], [])
        self.indexed.extend(i.item_id for i in items)
        count = self.store.count()
        if len(self.indexed) > 2 * count + 1024:  # re-indexed ids: compact, a new log
            self.indexed = list(dict.fromkeys(self.indexed))
            self.indexed_log = uuid.uuid4().hex
        return count

    def indexed_since(self, log_id: str | None, position: int) -> tuple[str, int, list[str]]:
        """(log id, new position, ids indexed after ``position``) for a follower of log
        ``log_id``; every id ever indexed when it follows another log (None: none yet).
        An id indexed again (its text changed) comes again; deleted ids may come too
        (`items` leaves them out)."""
        if log_id != self.indexed_log:
            position = 0
        return self.indexed_log, len(self.indexed), self.indexed[position:]

    def delete(self, item_ids: Sequence[str]) -> int:
        """Remove items (absent ids are ignored): no longer searched, looked up or read by
        `items` (the trainer), here and, after their next poll, in every replica; returns
        the catalog size."""
        ids = [i for i in dict.fromkeys(item_ids) if i in self.serving]
        if ids:  # (replicas hold what this store holds: an absent id is in none of them)
            self.store.delete(ids)
            self.base.delete(ids)
            self.serving.delete(ids)
            self._record([], ids)
        return self.store.count()

    def _record(self, points: list[ServingPoint], removed: list[str]) -> None:
        self.seq += 1
        self.feed.append((self.seq, points, removed))
        self.feed_points += len(points) + len(removed)
        while self.feed and self.feed_points > self.feed_size:
            _, dropped, unremoved = self.feed.popleft()
            self.feed_points -= len(dropped) + len(unremoved)

    def cursor(self) -> Cursor:
        return Cursor(self.epoch, self.model.version, self.seq)

    def changes_since(self, cursor: Cursor | None) -> Changes:
        """What a reader at ``cursor`` (None: nothing yet) must apply to be current: the
        points indexed and the ids deleted since, or every point when it is at another
        incarnation or version or further behind than the feed keeps."""
        now = self.cursor()
        if cursor is not None and (cursor.epoch, cursor.version) == (now.epoch, now.version):
            first_kept = self.feed[0][0] if self.feed else now.seq + 1
            if cursor.seq >= first_kept - 1:
                points, removed = net_changes([e for e in self.feed if e[0] > cursor.seq])
                return Changes.of_points(now, points, snapshot=False, removed=removed)
        if self.snapshot is None or self.snapshot.cursor != now:
            # Kept until the catalog changes: the replicas of all nodes ask at once after
            # a new version, and share one copy of the serving matrix.
            self.snapshot = None  # (its memory goes before the next is made)
            self.snapshot = Changes(now, *self.serving.columns(), snapshot=True)
        return self.snapshot

    def _reproject(self, model: ServingModel) -> None:
        """Move the whole catalog to ``model``'s version inside this one call.

        Cost: one adapter forward pass over the base matrix, no language model and no
        scan; the store gets the new serving vectors only (`VectorStore.update_rec`), and
        the first replica to ask gets a snapshot made from the serving matrix. On failure
        the previous version stays current (the store may hold some new vectors: a
        restart re-projects to the newest version anyway).
        """
        started = time.perf_counter()
        ids, scenarios, base = self.base.columns()
        pages = [
            np.asarray(
                model.item_vectors(
                    ids[at : at + _PAGE], base[at : at + _PAGE], scenarios[at : at + _PAGE]
                ),
                dtype=np.float32,
            )
            for at in range(0, len(ids), _PAGE)
        ]
        rec = np.concatenate(pages) if pages else np.zeros((0, self.dim), dtype=np.float32)
        with self.store.bulk():  # the engine's upkeep once at the end
            self.store.update_rec(ids, rec)
        serving = MatrixIndex(self.dim)
        serving.upsert_columns(ids, scenarios, rec)
        self.serving, self.model = serving, model
        self.seq += 1  # readers at the old version take a snapshot, made from `serving`
        self.snapshot = None  # (the old version's memory goes now)
        self.feed.clear()
        self.feed_points = 0
        moved = len(ids)
        log.info(
            "catalog at model version %d: %d items re-projected in %.2f s",
            model.version,
            moved,
            time.perf_counter() - started,
        )

    def lookup(self, item_ids: Sequence[str]) -> tuple[int, Mapping[str, Vector]]:
        """(model version, {item_id: rec vector}) read together."""
        return self.model.version, self.serving.vectors(item_ids)

    def items(self, item_ids: Sequence[str]) -> dict[str, tuple[Vector, str]]:
        """{item_id: (base vector, scenario)} of the present ids (what the trainer needs)."""
        return {k: (p.base, p.scenario) for k, p in self.store.get(item_ids).items()}

    def search_at(self, requests: Sequence[SearchRequest]) -> tuple[int, list[list[Hit]]]:
        """(model version, hits) read together."""
        return self.model.version, self.store.search(requests)

    def count(self) -> int:
        return self.store.count()

    def close(self) -> None:
        self.store.close()
