"""The adapter version a server uses, loaded from the published versions on disk.

Version 0 is the frozen language model alone: an item's rec vector is its base vector
and a user is the decayed fold of `workers.user_math`. Version v >= 1 is the adapter the
trainer published as ``<root>/v<v>`` (`workers.adapters.io`). Versions only move forward.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from workers.adapters import RecAdapter
from workers.adapters.io import latest_version, load_adapter, version_dir
from workers.user_math import Vector

log = logging.getLogger(__name__)


class ServingModel:
    """One server's copy of the current adapter (or none, at version 0)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.version = 0
        self.adapter: RecAdapter | None = None

    def latest(self) -> int:
        """The newest complete version published under the root (0 if none)."""
        return latest_version(self.root) or 0

    def load(self, version: int) -> ServingModel:
        """A new `ServingModel` at ``version`` (this one is left untouched)."""
        model = ServingModel(self.root)
        if version > 0:
            adapter = load_adapter(version_dir(self.root, version))
            adapter.eval()
            if adapter.version != version:
                raise ValueError(
                    f"{version_dir(self.root, version)} holds version {adapter.version}"
                )
            model.adapter = adapter
        model.version = version
        return model

    def item_vectors(
        self, item_ids: Sequence[str], base: Vector, scenarios: Sequence[str | None]
    ) -> Vector:
        """(n, dim) base vectors -> (n, dim) unit rec vectors of this version."""
        base = np.asarray(base, dtype=np.float32).reshape(len(item_ids), -1)
        if self.adapter is None:
            norms = np.linalg.norm(base, axis=1, keepdims=True)
            return (base / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        with torch.no_grad():
            out = self.adapter.item_vectors(item_ids, torch.from_numpy(base), scenarios)
        return out.numpy().astype(np.float32)

    # -- the user state of versions >= 1 (version 0 uses workers.user_math) ------------

    def initial_state(self) -> Vector:
        adapter = self._adapter()
        with torch.no_grad():
            return adapter.initial_state(1)[0].numpy().astype(np.float32)

    def step(self, state: Vector, rec_item: Vector) -> Vector:
        """Fold one item's rec vector into a user state, O(d)."""
        adapter = self._adapter()
        with torch.no_grad():
            new = adapter.step_items(
                torch.from_numpy(state[None, :]), torch.from_numpy(rec_item[None, :])
            )
        return new[0].numpy().astype(np.float32)

    def readout(self, state: Vector) -> Vector:
        """User state -> unit query vector."""
        adapter = self._adapter()
        with torch.no_grad():
            out = adapter.readout(torch.from_numpy(state[None, :]))
        return out[0].numpy().astype(np.float32)

    def _adapter(self) -> RecAdapter:
        if self.adapter is None:
            raise RuntimeError("version 0 has no adapter state")
        return self.adapter


def published_versions(root: str | Path) -> list[int]:
    """Every version directory under ``root``, oldest first (none if it is missing)."""
    path = Path(root)
    if not path.is_dir():
        return []
    return sorted(
        int(entry.name[1:])
        for entry in path.iterdir()
        if entry.is_dir() and entry.name.startswith("v") and entry.name[1:].isdigit()
    )


def prune_versions(root: str | Path, keep: int) -> list[int]:
    """Delete all but the newest ``keep`` version directories; returns the deleted ones.

    Servers load a version right after it is published, so only a server far behind
    (``keep`` versions) could miss one; it then moves to the newest instead.
    """
    path = Path(root)
    versions = published_versions(path)
    dropped = versions[:-keep] if keep > 0 else versions
    for version in dropped:
        shutil.rmtree(version_dir(path, version), ignore_errors=False)
        log.info("deleted adapter version %d under %s", version, path)
    return dropped
