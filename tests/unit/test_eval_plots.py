"""PNG plots: real PNG files of the expected size, clear errors on bad input, nothing
written when the input is bad."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tooling.evaluation import (
    Observation,
    PrequentialResult,
    RankingMetrics,
    plot_latency,
    plot_prequential,
    plot_vs_peers,
    prequential,
)

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path}: {len(data)} bytes, suspiciously small"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def run(versions: str, k: int = 10) -> PrequentialResult:
    obs = [
        Observation("u", str(n % 7), [str(n % 5), "x"], versions[n * len(versions) // 60])
        for n in range(60)
    ]
    return prequential([Observation("u", "first", None), *obs], k=k, window=10)


def metrics(recall: float, ndcg: float, k: int = 10) -> RankingMetrics:
    return RankingMetrics(k, 100, recall, ndcg, ndcg, recall / k, 2 * recall / (k + 1), 0.3)


PEERS = {"Pop": {"Recall@10": 0.0764, "NDCG@10": 0.0377, "MRR@10": 0.0258}}


def test_prequential_plot(tmp_path: Path) -> None:
    out = tmp_path / "new" / "prequential.png"  # the folder is created
    got = plot_prequential({"streamrec online": run("123"), "zero-shot": run("0")}, out)
    assert got == out and png_size(out) == (800, 600)


def test_latency_plot(tmp_path: Path) -> None:
    wide = [0.5 * 1.1**n for n in range(80)]  # spans > 2 decades: log axis
    got = plot_latency({"online": wide, "zero-shot": [3.0, 4.0, 5.0]}, str(tmp_path / "l.png"))
    assert got == tmp_path / "l.png" and png_size(got) == (700, 450)
    assert png_size(plot_latency({"one": [0.0, 1.0]}, tmp_path / "zero.png")) == (700, 450)


def test_peers_plot_is_deterministic(tmp_path: Path) -> None:
    ours = {"streamrec online": metrics(0.12, 0.06), "Pop": metrics(0.09, 0.045)}
    a = plot_vs_peers(ours, PEERS, tmp_path / "a.png")
    b = plot_vs_peers(ours, PEERS, tmp_path / "b.png")
    assert png_size(a) == (1000, 270)  # 1.5 + 0.4 x 3 rows inches at 100 dpi
    assert a.read_bytes() == b.read_bytes()
    assert png_size(plot_vs_peers(ours, None, tmp_path / "c.png"))[1] == 230


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plot_prequential({}, p), "no runs"),
        (lambda p: plot_prequential({"r": prequential([Observation("u", "i", None)])}, p),
         "'r' has no scored observations"),
        (lambda p: plot_prequential({"a": run("1"), "b": run("1", k=5)}, p), "different k"),
        (lambda p: plot_latency({}, p), "no runs"),
        (lambda p: plot_latency({"r": []}, p), "'r': no latencies"),
        (lambda p: plot_latency({"r": [1.0, math.nan]}, p), "finite and >= 0"),
        (lambda p: plot_latency({"r": [-1.0]}, p), "finite and >= 0"),
        (lambda p: plot_vs_peers({}, PEERS, p), "no models"),
        (lambda p: plot_vs_peers({"m": metrics(0.1, 0.05)}, {"BPR": {"Recall@10": 0.1}}, p),
         "'BPR' lacks finite NDCG@10"),
        (lambda p: plot_vs_peers({"a": metrics(0.1, 0.05), "b": metrics(0.1, 0.05, 5)}, None, p),
         "different k"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_and_write_nothing(
    tmp_path: Path, call: Callable[[Path], Path], message: str
) -> None:
    out = tmp_path / "out.png"
    with pytest.raises(ValueError, match=message):
        call(out)
    assert not out.exists()


def test_output_must_be_png(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png"):
        plot_latency({"r": [1.0]}, tmp_path / "l.jpg")
