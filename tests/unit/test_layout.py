"""The import rules of the three packages: tooling -> ``streams`` -> ``workers``.

Every ``.py`` file of ``streams/``, ``workers/`` and ``tooling/`` is parsed (``ast``, no
import is executed) and each violation is reported as ``file:line: rule``:

* a ``workers`` module imports ``streams`` or ``tooling``;
* a ``streams`` module imports ``tooling``; only ``streams/cli.py`` may, and only inside
  a function body (lazily, per command), never at module level;
* a runtime module (``streams``, ``workers``) imports ``matplotlib`` (the ``tooling``
  extra: the worker images do not install it).

``streams/`` holds the Faust runtime only: exactly the files of ``STREAMS_FILES``.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "workers", "tooling")
RUNTIME = ("streams", "workers")
CLI = "streams/cli.py"  # the one runtime module that may import tooling (lazily)
STREAMS_FILES = {
    "__init__.py",
    "agents.py",
    "batching.py",
    "app.py",
    "expiry.py",
    "fetch_wait.py",
    "handoff.py",
    "forget.py",
    "heap.py",
    "inflight.py",
    "metrics.py",
    "catalog.py",
    "cli.py",
    "deadletters.py",
    "delivery.py",
    "kafka_auth.py",
    "kafka_settings.py",
    "events.py",
    "record_limits.py",
    "remote.py",
    "schemas.py",
    "settings.py",
    "trainer_feed.py",
    "user_state.py",
    "transport.py",
    "worker.py",
}

WORKERS_RULE = "workers must not import streams or tooling (tooling -> streams -> workers)"
STREAMS_RULE = "streams must not import tooling (only streams/cli.py, inside a command function)"
CLI_RULE = "streams/cli.py may import tooling only inside a function body, not at module level"
MATPLOTLIB_RULE = "runtime modules (streams, workers) must not import matplotlib (tooling extra)"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    rule: str
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.module}: {self.rule}"


def _imports(tree: ast.AST, package: str) -> Iterator[tuple[ast.AST, str, bool]]:
    """(node, imported module, inside a function body) for every import in ``tree``:
    ``import x``, ``from x import y``, relative imports (resolved against ``package``)
    and ``importlib.import_module("x")`` / ``__import__("x")`` with a literal name."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: inside this package
                    base = f"{package}.{base}" if base else package
                yield child, base, in_function
            elif isinstance(child, ast.Call) and (name := _dynamic_import(child)):
                yield child, name, in_function
            nested = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            yield from walk(child, nested)

    yield from walk(tree, False)


def _dynamic_import(call: ast.Call) -> str | None:
    """The module a literal ``import_module("x")`` / ``__import__("x")`` imports."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def source_violations(source: str, path: str) -> list[Violation]:
    """The import-rule violations of one module, ``path`` relative to the repository root
    (``streams/cli.py``); its first part names the package whose rules apply."""
    package = path.split("/", 1)[0]
    found = []
    for node, module, in_function in _imports(ast.parse(source, path), package):
        top = module.split(".", 1)[0]
        rule = None
        if package == "workers" and top in ("streams", "tooling"):
            rule = WORKERS_RULE
        elif package == "streams" and top == "tooling":
            if path != CLI:
                rule = STREAMS_RULE
            elif not in_function:
                rule = CLI_RULE
        if rule is None and package in RUNTIME and top == "matplotlib":
            rule = MATPLOTLIB_RULE
        if rule is not None:
            found.append(Violation(path, getattr(node, "lineno", 0), rule, module))
    return found


def layout_violations(root: Path) -> list[Violation]:
    """Every violation in the packages under ``root``."""
    found = []
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            found.extend(source_violations(file.read_text(encoding="utf-8"), path))
    return found


def streams_entries(root: Path) -> set[str]:
    """What ``root/streams`` holds (folders as ``name/``; ``__pycache__`` skipped)."""
    return {
        f"{p.name}/" if p.is_dir() else p.name
        for p in (root / "streams").iterdir()
        if p.name != "__pycache__"
    }


def streams_problems(root: Path) -> list[str]:
    entries = streams_entries(root)
    extra = sorted(entries - STREAMS_FILES)
    missing = sorted(STREAMS_FILES - entries)
    problems = [
        f"streams/{name}: not the Faust runtime (tooling belongs in tooling/; a new runtime "
        "module goes into STREAMS_FILES of tests/unit/test_layout.py)"
        for name in extra
    ]
    problems += [f"streams/{name}: listed in STREAMS_FILES but missing" for name in missing]
    return problems


# ---- the repository --------------------------------------------------------------------


def test_packages_import_one_way() -> None:
    for package in PACKAGES:
        assert any((ROOT / package).rglob("*.py")), f"{package}/ has no modules"
    violations = layout_violations(ROOT)
    assert not violations, "import rules broken:\n" + "\n".join(map(str, violations))


def test_streams_holds_the_faust_runtime_only() -> None:
    problems = streams_problems(ROOT)
    assert not problems, "\n".join(problems)


def test_no_scripts_folder_outside_the_packages() -> None:
    assert not (ROOT / "scripts").exists(), "scripts/: tooling lives in the tooling package"


# ---- the checker itself ----------------------------------------------------------------


def check(path: str, source: str) -> list[tuple[int, str, str]]:
    return [
        (v.line, v.rule, v.module)
        for v in source_violations(textwrap.dedent(source).lstrip("\n"), path)
    ]


def test_workers_may_import_neither_streams_nor_tooling() -> None:
    source = """
        import numpy as np
        from workers.config import StoreConfig
        from streams.settings import Settings
        import tooling.evaluation
        from tooling import datasets

        def later():
            from streams import app
    """
    assert check("workers/x.py", source) == [
        (3, WORKERS_RULE, "streams.settings"),
        (4, WORKERS_RULE, "tooling.evaluation"),
        (5, WORKERS_RULE, "tooling"),
        (8, WORKERS_RULE, "streams"),  # lazily is no better
    ]
    assert check("workers/sub/y.py", "from . import streams_helper\n") == []
    assert check("workers/x.py", "import streamsy\nimport toolingx\n") == []


def test_streams_may_not_import_tooling_except_lazily_in_the_cli() -> None:
    top_level = "from tooling.demo import run_demo\n"
    assert check("streams/worker.py", top_level) == [(1, STREAMS_RULE, "tooling.demo")]
    assert check(CLI, top_level) == [(1, CLI_RULE, "tooling.demo")]
    lazy = """
        import click

        def demo():
            from tooling.demo import run_demo
            return run_demo

        async def bench():
            import tooling.bench
    """
    assert check(CLI, lazy) == []
    assert check("streams/app.py", lazy) == [
        (4, STREAMS_RULE, "tooling.demo"),
        (8, STREAMS_RULE, "tooling.bench"),
    ]
    in_class = """
        class Commands:
            from tooling import bench
    """
    assert check(CLI, in_class) == [(2, CLI_RULE, "tooling")]  # a class body is module level
    guarded = """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from tooling.local import LocalStack
    """
    assert check(CLI, guarded) == [(3, CLI_RULE, "tooling.local")]
    assert check("streams/worker.py", "from streams import catalog\nimport workers\n") == []


def test_dynamic_imports_count_too() -> None:
    source = """
        import importlib
        demo = importlib.import_module("tooling.demo")
        plt = __import__("matplotlib.pyplot")
        name = "tooling"
        other = importlib.import_module(name)
    """
    assert check("streams/events.py", source) == [
        (2, STREAMS_RULE, "tooling.demo"),
        (3, MATPLOTLIB_RULE, "matplotlib.pyplot"),
    ]


def test_runtime_may_not_import_matplotlib() -> None:
    source = """
        def plot():
            from matplotlib.figure import Figure
            return Figure
    """
    assert check("workers/x.py", source) == [(2, MATPLOTLIB_RULE, "matplotlib.figure")]
    assert check("streams/x.py", "import matplotlib\n") == [(1, MATPLOTLIB_RULE, "matplotlib")]
    assert check("tooling/evaluation/plots.py", source) == []


def test_tooling_may_import_anything() -> None:
    source = "from streams.settings import KafkaConfig\nfrom workers.training import Sample\n"
    assert check("tooling/x.py", source) == []


def test_relative_imports_resolve_to_their_package() -> None:
    assert check("streams/x.py", "from . import schemas\nfrom .app import Pipeline\n") == []
    assert check("workers/x.py", "from .. import tooling\n") == []  # workers.tooling: not ours


def test_violations_name_the_file_line_and_rule(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "workers" / "bad.py").write_text('"""Doc."""\n\nimport tooling.local\n')
    (tmp_path / "streams" / "cli.py").write_text("from tooling import bench\n")
    (tmp_path / "tooling" / "fine.py").write_text("import matplotlib\nimport streams\n")
    found = [str(v) for v in layout_violations(tmp_path)]
    assert found == [
        f"streams/cli.py:1: imports tooling: {CLI_RULE}",
        f"workers/bad.py:3: imports tooling.local: {WORKERS_RULE}",
    ]


def test_streams_listing_catches_tooling_left_in_streams(tmp_path: Path) -> None:
    (tmp_path / "streams" / "resources").mkdir(parents=True)
    (tmp_path / "streams" / "__pycache__").mkdir()
    for name in [*STREAMS_FILES - {"transport.py"}, "demo.py"]:
        (tmp_path / "streams" / name).write_text("")
    problems = streams_problems(tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "streams/demo.py",
        "streams/resources/",
        "streams/transport.py",
    ]
    assert "missing" in problems[-1]


def test_unparsable_module_is_an_error_naming_the_file() -> None:
    with pytest.raises(SyntaxError) as info:
        source_violations("def broken(:\n", "workers/broken.py")
    assert info.value.filename == "workers/broken.py"
