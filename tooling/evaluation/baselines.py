"""Deterministic reference recommenders on a :class:`~tooling.evaluation.split.Split`.

In: a split, K, which targets to serve (``for_="test"`` or ``"valid"``), optionally the
catalog to rank (default ``split.items``: every item in the data, as RecBole ranks every
item of its dataset). Out: user -> top-K item ids, for every user with a target of that
phase, with ``split.history(user, for_)`` excluded (training items, plus the validation
item when serving test; see ``split.py``). Models are fitted on ``split.train`` only.

Ties are broken by item id, numeric ids compared as numbers ("9" < "10") and before
non-numeric ones, which are compared as text. RecBole breaks ties by ``torch.topk``
over its internal ids, so tied lists can differ from it in order (not in scores).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from tooling.evaluation.split import ItemId, Split, UserId

Matrix = npt.NDArray[np.float32]  # float32, as RecBole computes ItemKNN


def id_key(item: str) -> tuple[int, int, str]:
    """Sort key of an id: numeric ids by value first, then the others as text."""
    return (0, int(item), "") if item.isdecimal() else (1, 0, item)


def catalog_order(items: Iterable[ItemId]) -> list[ItemId]:
    """Distinct ``items`` sorted by :func:`id_key` (the tie-break order)."""
    return sorted(set(items), key=id_key)


def most_popular(
    split: Split, k: int = 10, for_: str = "test", catalog: Sequence[ItemId] | None = None
) -> dict[UserId, list[ItemId]]:
    """Most-popular items by training interaction count (repeats count), ties by item id;
    each user's history excluded. The textbook Pop; for RecBole's, see :func:`recbole_pop`."""
    return _rank_by_counts(split, split.item_train_counts, k, for_, catalog)


def recbole_pop(
    split: Split,
    k: int = 10,
    for_: str = "test",
    seed: int = 0,
    batch_size: int = 2048,
    catalog: Sequence[ItemId] | None = None,
) -> dict[UserId, list[ItemId]]:
    """Emulation of RecBole 1.2.1's ``Pop`` as its defaults train it (to explain peers' rows).

    ``Pop.calculate_loss`` runs ``item_cnt[item] = item_cnt[item] + 1`` on a batch: with
    repeated indices an item gains 1 per *batch*, not per interaction. Its one training
    epoch is shuffled, POINTWISE, with one uniform negative per row (default
    ``train_neg_sample_args``: an item the user has no training interaction with), so a
    batch of ``batch_size`` holds ``batch_size // 2`` training rows and their negatives.
    Its "popularity" is the number of batches an item appears in, which saturates for
    popular items. Ties by item id. Seeded numpy, not RecBole's random stream: a run
    matches RecBole's in distribution, not list for list.
    """
    items = catalog_order(split.items if catalog is None else catalog)
    column = {item: index for index, item in enumerate(items)}
    users = {user: index for index, user in enumerate(split.user_train_counts)}
    rows = [
        (users[str(e["user_id"])], column[str(e["item_id"])])
        for e in split.train
        if str(e["item_id"]) in column
    ]
    who = np.array([u for u, _ in rows], dtype=np.int64)
    pos = np.array([i for _, i in rows], dtype=np.int64)
    n = len(items)
    used = np.unique(who * n + pos)
    rng = np.random.default_rng(seed)
    neg = rng.integers(n, size=len(pos))
    redo = np.isin(who * n + neg, used)
    while redo.any():
        neg[redo] = rng.integers(n, size=int(redo.sum()))
        redo = np.isin(who * n + neg, used)
    order = rng.permutation(len(pos))
    counts = np.zeros(n, dtype=np.int64)
    step = max(batch_size // 2, 1)
    for start in range(0, len(pos), step):
        batch = order[start : start + step]
        counts[np.unique(np.concatenate([pos[batch], neg[batch]]))] += 1
    return _rank_by_counts(split, dict(zip(items, counts.tolist(), strict=True)), k, for_, items)


def _rank_by_counts(
    split: Split,
    counts: dict[ItemId, int],
    k: int,
    for_: str,
    catalog: Sequence[ItemId] | None,
) -> dict[UserId, list[ItemId]]:
    """Top ``k`` of the catalog by ``counts`` (ties by item id), history excluded."""
    if k < 1:
        raise ValueError("k must be >= 1")
    order = sorted(
        catalog_order(split.items if catalog is None else catalog),
        key=lambda i: -counts.get(i, 0),
    )  # sorted() is stable: tied counts stay in item id order
    out: dict[UserId, list[ItemId]] = {}
    for user in split.targets(for_):
        seen = split.history(user, for_)
        top: list[ItemId] = []
        for item in order:
            if item not in seen:
                top.append(item)
                if len(top) == k:
                    break
        out[user] = top
    return out


def item_knn(
    split: Split,
    k: int = 10,
    for_: str = "test",
    neighbours: int = 100,
    shrink: float = 0.0,
    catalog: Sequence[ItemId] | None = None,
    block: int = 512,
) -> dict[UserId, list[ItemId]]:
    """Item-based CF as RecBole's ``ItemKNN`` (defaults ``k=100``, ``shrink=0.0``).

    X is the binary user x item training matrix (RecBole's would count a repeated
    user-item pair twice; the MovieLens files have no repeats). For a candidate item i, sim(j, i) =
    X_j . X_i / (|X_j| |X_i| + shrink + 1e-6), sim(i, i) = 0; i keeps only its
    ``neighbours`` most similar items j (ties: lower item id). The score of i for user
    u is the sum of sim(j, i) over u's *training* items j that are among i's
    neighbours (the validation item is excluded from the ranking for test, not added
    to the user's profile: RecBole scores with the training matrix). Candidates are
    the catalog minus the user's history; ties by item id. Dense float32 numpy in
    blocks of ``block`` candidate items: memory O(users x items + items x block);
    about 1 s on ML-100K, 7 s on ml-latest-small (2 cores).
    """
    if neighbours < 1 or k < 1:
        raise ValueError("k and neighbours must be >= 1")
    items = catalog_order(split.items if catalog is None else catalog)
    column = {item: index for index, item in enumerate(items)}
    targets = list(split.targets(for_))
    fitted = {user: n for n, user in enumerate(split.train_items_by_user)}
    x = np.zeros((len(fitted), len(items)), dtype=np.float32)
    for user, row in fitted.items():
        cols = [column[i] for i in split.train_items_by_user[user] if i in column]
        x[row, cols] = 1.0
    users_x = np.zeros((len(targets), len(items)), dtype=np.float32)
    for n, user in enumerate(targets):
        if user in fitted:
            users_x[n] = x[fitted[user]]
    scores = _knn_scores(x, users_x, neighbours, shrink, block)
    for n, user in enumerate(targets):
        seen = [column[i] for i in split.history(user, for_) if i in column]
        scores[n, seen] = -np.inf
    return {user: top_k(scores[n], items, k) for n, user in enumerate(targets)}


def _knn_scores(x: Matrix, users_x: Matrix, neighbours: int, shrink: float, block: int) -> Matrix:
    """users_x @ W, W the neighbour-pruned cosine similarity of x's columns."""
    n_items = x.shape[1]
    norms = np.sqrt(x.sum(axis=0))
    scores = np.zeros((users_x.shape[0], n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        sim = x.T @ x[:, start:stop]  # item j (rows) x candidate i (columns)
        sim[np.arange(start, stop), np.arange(stop - start)] = 0.0
        sim /= np.outer(norms, norms[start:stop]) + shrink + 1e-6
        if neighbours < n_items:
            sim = np.where(_top_per_column(sim, neighbours), sim, 0.0)
        scores[:, start:stop] = users_x @ sim
    return scores


def _top_per_column(sim: Matrix, n: int) -> npt.NDArray[np.bool_]:
    """Mask of the ``n`` largest values of each column, ties at the cut to lower rows
    (what a stable descending sort would keep, in O(rows) per column)."""
    cut = -np.partition(-sim, n - 1, axis=0)[n - 1]  # n-th largest value per column
    above = sim > cut
    tied = sim == cut
    room = n - above.sum(axis=0)
    mask: npt.NDArray[np.bool_] = above | (tied & (np.cumsum(tied, axis=0) <= room))
    return mask


def top_k(
    row: Matrix,
    items: Sequence[ItemId],
    k: int,
    excluded: npt.NDArray[np.bool_] | None = None,
) -> list[ItemId]:
    """The items of the ``k`` best finite scores of ``row``, ``excluded`` columns (a mask)
    left out; ties by position (= item id order)."""
    if excluded is not None:
        row = np.where(excluded, np.float32(-np.inf), row)
    order = np.argsort(-row, kind="stable")[:k]
    return [items[int(i)] for i in order if np.isfinite(row[i])]
