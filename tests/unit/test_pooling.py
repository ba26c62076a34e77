"""Pooling of token states into one vector per text (pure torch)."""

from __future__ import annotations

import pytest
import torch

from workers.pooling import POOLERS, cls_pool, l2_normalize, mean_pool


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    states = torch.randn(3, 5, 4)
    mask = torch.tensor(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
            [1, 0, 0, 0, 0],
        ]
    )
    return states, mask


def test_mean_pool_averages_real_tokens_only(
    batch: tuple[torch.Tensor, torch.Tensor],
) -> None:
    states, mask = batch
    out = mean_pool(states, mask)
    assert out.shape == (3, 4)
    torch.testing.assert_close(out[0], states[0].mean(dim=0))
    torch.testing.assert_close(out[1], states[1, :2].mean(dim=0))
    torch.testing.assert_close(out[2], states[2, 0])


def test_mean_pool_ignores_padded_positions(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    states, mask = batch
    changed = states.clone()
    changed[mask == 0] = 1000.0  # garbage in every padded position
    torch.testing.assert_close(mean_pool(changed, mask), mean_pool(states, mask))
    # ... while a real token does change the output
    changed[1, 0] += 1.0
    assert not torch.allclose(mean_pool(changed, mask)[1], mean_pool(states, mask)[1])


def test_mean_pool_with_all_masked_row_is_finite() -> None:
    states = torch.ones(1, 3, 2)
    out = mean_pool(states, torch.zeros(1, 3, dtype=torch.long))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.zeros(1, 2))


def test_mean_pool_keeps_dtype() -> None:
    states = torch.randn(2, 3, 4, dtype=torch.float64)
    assert mean_pool(states, torch.ones(2, 3, dtype=torch.long)).dtype == torch.float64


def test_cls_pool_takes_first_token(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    states, mask = batch
    out = cls_pool(states, mask)
    torch.testing.assert_close(out, states[:, 0])
    changed = states.clone()
    changed[:, 1:] = 0.0
    torch.testing.assert_close(cls_pool(changed, mask), out)


def test_l2_normalize_gives_unit_rows() -> None:
    vectors = torch.tensor([[3.0, 4.0], [0.0, -2.0], [1e-3, 1e-3]])
    out = l2_normalize(vectors)
    torch.testing.assert_close(out[0], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))


def test_l2_normalize_zero_rows_stay_zero_and_finite() -> None:
    out = l2_normalize(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))


def test_l2_normalize_returns_new_tensor() -> None:
    vectors = torch.tensor([[3.0, 4.0]])
    out = l2_normalize(vectors)
    assert out.data_ptr() != vectors.data_ptr()
    torch.testing.assert_close(vectors, torch.tensor([[3.0, 4.0]]))


def test_poolers_registry() -> None:
    assert {"mean": mean_pool, "cls": cls_pool} == POOLERS
