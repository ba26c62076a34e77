"""`TextEncoder` with the real embedded all-MiniLM-L6-v2, and with any HF model directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.config import EncoderConfig
from workers.encoder import TextEncoder

SPACE_A = "Astronauts launch a rocket to the International Space Station."
SPACE_B = "A spacecraft orbits Mars and lands a rover on the red planet."
COOKING = "Simmer the tomato sauce with garlic and basil, then add the pasta."
TEXTS = [SPACE_A, COOKING, SPACE_B, "A short one.", "Ünïcödé text — with dashes"]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(EncoderConfig())


def test_shape_dtype_and_unit_rows(encoder: TextEncoder) -> None:
    out = encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), 384)
    assert out.dtype == np.float32
    assert encoder.dimension() == 384
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_empty_input(encoder: TextEncoder) -> None:
    out = encoder.encode([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_blank_text_still_gives_a_unit_vector(encoder: TextEncoder) -> None:
    out = encoder.encode(["", "   "])
    assert out.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_related_texts_are_closer_than_unrelated(encoder: TextEncoder) -> None:
    a, b, c = encoder.encode([SPACE_A, SPACE_B, COOKING])
    assert float(a @ b) > float(a @ c) + 0.1
    assert float(a @ b) > float(b @ c) + 0.1


def test_deterministic_across_calls(encoder: TextEncoder) -> None:
    np.testing.assert_array_equal(encoder.encode(TEXTS), encoder.encode(TEXTS))


def test_batching_does_not_change_vectors(encoder: TextEncoder) -> None:
    small = TextEncoder(EncoderConfig(batch_size=2))
    assert encoder.config.batch_size >= len(TEXTS)
    together = encoder.encode(TEXTS)
    in_pairs = small.encode(TEXTS)
    np.testing.assert_allclose(in_pairs, together, atol=1e-5)
    # each text alone (no padding at all) agrees too
    alone = np.concatenate([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_long_text_is_truncated_not_rejected(encoder: TextEncoder) -> None:
    long = " ".join(["rocket"] * 5000)
    out = encoder.encode([long, long + " garlic pasta"])
    # beyond max_length tokens the rest is cut, so both texts encode the same
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


# --- any Hugging Face model directory -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(EncoderConfig().resolved_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_any_model_directory_by_configuration(tiny_bert: Path, pooling: str) -> None:
    enc = TextEncoder(EncoderConfig(model_path=tiny_bert, pooling=pooling))
    assert enc.dimension() == 32
    out = enc.encode(TEXTS[:3])
    assert out.shape == (3, 32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1])


def test_cls_and_mean_pooling_differ(tiny_bert: Path) -> None:
    mean = TextEncoder(EncoderConfig(model_path=tiny_bert, pooling="mean")).encode([SPACE_A])
    cls = TextEncoder(EncoderConfig(model_path=tiny_bert, pooling="cls")).encode([SPACE_A])
    assert not np.allclose(mean, cls, atol=1e-3)


def test_missing_model_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        TextEncoder(EncoderConfig(model_path=tmp_path / "absent"))
