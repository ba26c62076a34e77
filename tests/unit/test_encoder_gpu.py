"""The encoder's GPU path: same vectors on CUDA as on the CPU (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workers.config import EncoderConfig
from workers.encoder import TextEncoder, pick_device

pytestmark = pytest.mark.gpu

WORDS = [
    "the",
    "a",
    "rocket",
    "space",
    "moon",
    "astronaut",
    "cook",
    "pasta",
    "bread",
    "garden",
    "rose",
    "soil",
    "mars",
    "orbit",
]
TEXTS = ["the rocket to the moon", "an astronaut in orbit", "cook pasta and bread", "rose garden"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random BERT with its own word-piece vocabulary (nothing downloaded)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]))
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_encoder_runs_on_the_gpu_and_matches_the_cpu(tiny_model_dir: Path) -> None:
    assert pick_device(1.0).type == "cuda"
    gpu = TextEncoder(EncoderConfig(model_path=tiny_model_dir, num_gpus=1.0, batch_size=3))
    cpu = TextEncoder(EncoderConfig(model_path=tiny_model_dir, num_gpus=0.0, batch_size=3))
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).is_cuda
    assert cpu.device.type == "cpu"
    on_gpu, on_cpu = gpu.encode(TEXTS), cpu.encode(TEXTS)
    assert isinstance(on_gpu, np.ndarray) and on_gpu.dtype == np.float32
    assert on_gpu.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(on_gpu, axis=1), 1.0, atol=1e-5)


def test_no_gpu_requested_means_cpu() -> None:
    assert pick_device(0.0).type == "cpu"
