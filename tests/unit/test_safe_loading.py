"""The runtime loads models and adapters without running code from files: safetensors
only, no pickle (``torch.load``, ``pickle`` and its kin), no ``eval``/``exec``, no
``trust_remote_code``. A static check over streams/ and workers/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = sorted([*(ROOT / "streams").rglob("*.py"), *(ROOT / "workers").rglob("*.py")])
PICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def problems(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names.append(getattr(node, "module", None) or "")
            if any(n.split(".")[0] in PICKLERS for n in names):
                found.append(f"line {node.lineno}: imports a pickle module")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        owner = (
            func.value.id
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            else ""
        )
        if isinstance(func, ast.Name) and name in ("eval", "exec"):
            found.append(f"line {node.lineno}: {name}()")
        if owner == "torch" and name == "load":
            found.append(f"line {node.lineno}: torch.load (a pickle)")
        keywords = {k.arg: k.value for k in node.keywords}
        remote = keywords.get("trust_remote_code")
        if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
            found.append(f"line {node.lineno}: trust_remote_code not False")
        if name == "from_pretrained":
            if not (isinstance(remote, ast.Constant) and remote.value is False):
                found.append(f"line {node.lineno}: from_pretrained without trust_remote_code=False")
            safe = keywords.get("use_safetensors")
            loads_weights = owner != "AutoTokenizer"
            if loads_weights and not (isinstance(safe, ast.Constant) and safe.value is True):
                found.append(f"line {node.lineno}: from_pretrained without use_safetensors=True")
    return found


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_loads_nothing_that_runs_code(path: Path) -> None:
    assert not problems(path.read_text(encoding="utf-8"))


def test_the_check_finds_what_it_looks_for() -> None:
    source = """
import pickle
from cloudpickle import dumps
x = torch.load("w.pt")
y = eval("1")
model.eval()
m = AutoModel.from_pretrained(p, trust_remote_code=True)
t = AutoTokenizer.from_pretrained(p, trust_remote_code=False)
"""
    found = problems(source)
    assert len([f for f in found if "pickle module" in f]) == 2
    assert any("torch.load" in f for f in found)
    assert any("eval()" in f for f in found) and not any("line 6" in f for f in found)
    assert any("line 7: trust_remote_code not False" in f for f in found)
    assert any("line 7: from_pretrained without use_safetensors" in f for f in found)
    assert not any("line 8" in f for f in found)
