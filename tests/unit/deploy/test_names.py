"""Every YAML file parses and every STREAMREC_ name in deploy/ is a real setting.

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.deploy.helpers import (
    DEPLOY,
    ENV_NAME,
    ROOT,
    load_all,
    setting_env_names,
    text_files,
    yaml_paths,
)


def test_setting_env_names_walks_nested_sections() -> None:
    names = setting_env_names()
    assert {
        "STREAMREC_DATA_DIR",
        "STREAMREC_READY_FILE",
        "STREAMREC_KAFKA__BROKER",
        "STREAMREC_KAFKA__PARTITIONS",
        "STREAMREC_KAFKA__TOPICS__DEAD_LETTERS",
        "STREAMREC_RAY__ADDRESS",
        "STREAMREC_STORE__API_KEY",
        "STREAMREC_ENCODER__NUM_GPUS",
        "STREAMREC_ENCODER__MODEL_PATH",
    } <= names
    assert "STREAMREC_KAFKA__BROKERS" not in names
    assert "STREAMREC_TOPICS__ITEMS" not in names


# ---- every YAML file parses, every STREAMREC_ name exists -----------------------------


@pytest.mark.parametrize("path", yaml_paths(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in docs)


def test_every_streamrec_env_name_is_a_setting() -> None:
    valid = setting_env_names()
    used: dict[str, set[str]] = {}
    for path in text_files():
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert len(used) >= 5, "expected deploy/ to set STREAMREC_* variables"
    unknown = {name: sorted(paths) for name, paths in used.items() if name not in valid}
    assert not unknown, f"not settings of streams.settings.Settings: {unknown}"
