"""Images are pinned, name no registry, and match the Ray and Python versions.

Nothing here starts Docker or Kubernetes (see helpers.py)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from tests.unit.deploy.helpers import (
    CLUSTER_SUFFIXES,
    ROOT,
    URL,
    WORKER_DOCKERFILE,
    all_images,
    dockerfile_bases,
    dockerfiles,
    logical_lines,
    pin_problem,
    pinned_ray_version,
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
