"""Versioned, atomic adapter checkpoints (peft's file names, safetensors weights).

Layout::

    root/
      v000001/adapter_config.json       {"format", "version", "config", "scenarios", "items"}
              adapter_model.safetensors  the state dict
      v000002/...

A version is written into a hidden temporary directory beside it and renamed into
place in one step, so a reader listing ``root`` sees a version completely or not at
all. Versions only move forward: saving one that is not above the latest raises.

A version also travels between Ray nodes as its two files in memory (`AdapterFiles`,
`adapter_files` / `adapter_from_files`), so no directory has to be shared.

Format 2 stores the ID residual table (and its target counts) only up to the last
registered row: rows past it are zero and no item maps to them, so the files grow with
the items the trainer has seen, not with ``max_items`` (1.7k of 16,384 rows on ML-100K:
3.8 MB instead of 26.4 MB a version). A loaded table holds the stored rows and grows as
a resumed trainer registers more (`ItemResidual`). Format 1 (the whole table) still loads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load as load_weights
from safetensors.torch import save as dump_weights

from workers.adapters.config import AdapterConfig
from workers.adapters.model import RecAdapter

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "streamrec-adapter/2"
LEGACY_FORMAT = "streamrec-adapter/1"  # the whole ID table stored; still loads
# The state-dict entries sized by max_items (`ItemResidual`): stored up to the last used row.
ID_ROWS_KEYS = ("item_residual.table.weight", "item_residual.counts")
_VERSION_DIR = re.compile(r"^v(\d{6,})$")

AdapterFiles = dict[str, bytes]  # {CONFIG_NAME: JSON, WEIGHTS_NAME: safetensors}


def version_dir(root: str | os.PathLike[str], version: int) -> Path:
    """``root/v000042`` for version 42."""
    if version < 0:
        raise ValueError(f"version must be >= 0, got {version}")
    return Path(root) / f"v{version:06d}"


def published_versions(root: str | os.PathLike[str]) -> list[int]:
    """Every complete version under ``root``, oldest first (none if it is missing).

    The one definition of a published version: a ``v<6+ digits>`` directory holding
    its config file (a version being written sits in a hidden temporary directory).
    """
    path = Path(root)
    if not path.is_dir():
        return []
    return sorted(
        int(match.group(1))
        for entry in path.iterdir()
        if (match := _VERSION_DIR.match(entry.name)) and (entry / CONFIG_NAME).is_file()
    )


def latest_version(root: str | os.PathLike[str]) -> int | None:
    """Highest complete version under ``root``, or None (missing or empty root)."""
    found = published_versions(root)
    return found[-1] if found else None


def prune_versions(root: str | os.PathLike[str], keep: int) -> list[int]:
    """Delete all but the newest ``keep`` versions; returns the deleted ones.

    Servers load a version right after it is published, so only a server far behind
    (``keep`` versions) could miss one; it then moves to the newest instead.
    """
    versions = published_versions(root)
    dropped = versions[:-keep] if keep > 0 else versions
    for version in dropped:
        shutil.rmtree(version_dir(root, version))
    return dropped


def adapter_files(model: RecAdapter, version: int) -> AdapterFiles:
    """``model`` as ``version``'s two files, in memory (CPU tensors), in ``FORMAT``."""
    meta = {
        "format": FORMAT,
        "version": version,
        "config": model.config.to_dict(),
        "scenarios": dict(model.scenarios),
        "items": dict(model.items),
    }
    used = len(model.items) + 1  # row 0 (the unknown item) and one row per registered item
    weights = {
        k: (v[:used] if k in ID_ROWS_KEYS else v).detach().cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    return {
        CONFIG_NAME: json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"),
        WEIGHTS_NAME: dump_weights(weights, metadata={"format": FORMAT}),
    }


def adapter_from_files(files: AdapterFiles) -> RecAdapter:
    """The adapter of one version's files (as `adapter_files` makes them), in eval mode;
    its ID table holds the stored rows (and grows if it goes on training)."""
    missing = {CONFIG_NAME, WEIGHTS_NAME} - set(files)
    if missing:
        raise ValueError(f"adapter files missing: {sorted(missing)}")
    meta = json.loads(files[CONFIG_NAME])
    if meta.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise ValueError(f"{CONFIG_NAME}: not a {FORMAT} (or {LEGACY_FORMAT}) checkpoint")
    config = AdapterConfig.from_checkpoint(meta["config"])
    items = meta.get("items", {})  # absent in checkpoints without an ID table
    weights = load_weights(files[WEIGHTS_NAME])
    if meta["format"] == FORMAT:
        if len(items) >= max(config.max_items, 1):
            raise ValueError(f"{len(items)} items do not fit max_items {config.max_items}")
        for key in ID_ROWS_KEYS:
            stored = weights.get(key)
            if stored is not None and (stored.ndim < 1 or stored.shape[0] != len(items) + 1):
                raise ValueError(f"{WEIGHTS_NAME}: {key} does not hold {len(items) + 1} rows")
    model = RecAdapter(config)
    model.load_state_dict(weights, strict=True)
    model.load_scenarios(meta["scenarios"])
    model.load_items(items)
    model.version = int(meta["version"])
    return model.eval()


def save_files(files: AdapterFiles, root: str | os.PathLike[str], version: int) -> Path:
    """Write one version's files under ``root`` atomically; return its directory.

    Raises ValueError if ``version`` is not above `latest_version`.
    """
    root_path = Path(root)
    target = version_dir(root_path, version)
    latest = latest_version(root_path)
    if latest is not None and version <= latest:
        raise ValueError(f"adapter version {version} is not above the latest ({latest})")
    root_path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root_path))
    try:
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            (tmp / name).write_bytes(files[name])
            _fsync(tmp / name)
        # rename(2) of a directory is atomic, and fails if a non-empty `target` exists
        # (a concurrent writer of the same version): never a mix of two writers' files.
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(root_path)
    return target


def read_files(root: str | os.PathLike[str], version: int) -> AdapterFiles:
    """One published version's files, as `save_files` wrote them."""
    directory = version_dir(root, version)
    return {name: (directory / name).read_bytes() for name in (CONFIG_NAME, WEIGHTS_NAME)}


def save_adapter(model: RecAdapter, root: str | os.PathLike[str], version: int) -> Path:
    """Write ``model`` as ``version`` under ``root`` atomically; return its directory.

    Raises ValueError if ``version`` is not above `latest_version` (the model itself is
    not changed: its ``version`` attribute is the caller's to set).
    """
    return save_files(adapter_files(model, version), root, version)


def load_adapter(directory: str | os.PathLike[str]) -> RecAdapter:
    """Load one version directory (as written by `save_adapter`) in eval mode."""
    path = Path(directory)
    return adapter_from_files({n: (path / n).read_bytes() for n in (CONFIG_NAME, WEIGHTS_NAME)})


def load_latest(root: str | os.PathLike[str]) -> RecAdapter | None:
    """The newest version under ``root``, or None when there is none yet."""
    latest = latest_version(root)
    return None if latest is None else load_adapter(version_dir(root, latest))


def _fsync(path: Path) -> None:
    # Durability across a crash: the files' bytes, then the directory entry.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
