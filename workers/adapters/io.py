"""Versioned, atomic adapter checkpoints (peft's file names, safetensors weights).

Layout::

    root/
      v000001/adapter_config.json       {"format", "version", "config", "scenarios", "items"}
              adapter_model.safetensors  the state dict
      v000002/...

A version is written into a hidden temporary directory beside it and renamed into
place in one step, so a reader listing ``root`` sees a version completely or not at
all. Versions only move forward: saving one that is not above the latest raises.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from workers.adapters.config import AdapterConfig
from workers.adapters.model import RecAdapter

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "streamrec-adapter/1"
_VERSION_DIR = re.compile(r"^v(\d{6,})$")


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


def save_adapter(model: RecAdapter, root: str | os.PathLike[str], version: int) -> Path:
    """Write ``model`` as ``version`` under ``root`` atomically; return its directory.

    Raises ValueError if ``version`` is not above `latest_version` (the model itself is
    not changed: its ``version`` attribute is the caller's to set).
    """
    root_path = Path(root)
    target = version_dir(root_path, version)
    latest = latest_version(root_path)
    if latest is not None and version <= latest:
        raise ValueError(f"adapter version {version} is not above the latest ({latest})")
    root_path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root_path))
    try:
        meta = {
            "format": FORMAT,
            "version": version,
            "config": model.config.to_dict(),
            "scenarios": dict(model.scenarios),
            "items": dict(model.items),
        }
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS_NAME), metadata={"format": FORMAT})
        with open(tmp / CONFIG_NAME, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            _fsync(tmp / name)
        # rename(2) of a directory is atomic, and fails if a non-empty `target` exists
        # (a concurrent writer of the same version): never a mix of two writers' files.
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(root_path)
    return target


def load_adapter(directory: str | os.PathLike[str]) -> RecAdapter:
    """Load one version directory (as written by `save_adapter`) in eval mode."""
    path = Path(directory)
    with open(path / CONFIG_NAME, encoding="utf-8") as fh:
        meta = json.load(fh)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / CONFIG_NAME}: not a {FORMAT} checkpoint")
    model = RecAdapter(AdapterConfig.from_dict(meta["config"]))
    model.load_state_dict(load_file(str(path / WEIGHTS_NAME), device="cpu"), strict=True)
    model.load_scenarios(meta["scenarios"])
    model.load_items(meta.get("items", {}))  # absent in checkpoints without an ID table
    model.version = int(meta["version"])
    return model.eval()


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
