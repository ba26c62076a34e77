"""The serving API: catalog re-projection, user recompute and the incremental fold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.unit.adapters.helpers import DIM, cfg, scramble, unit, user_vectors
from workers.adapters import RecAdapter, load_adapter, save_adapter


def trained_with_ids(kind: str = "attention") -> RecAdapter:
    """Rows set by hand, whole (no shrinkage: test_id_shrinkage.py has it)."""
    model = RecAdapter(cfg(aggregator=kind, max_items=6, dropout=0.3, id_shrinkage=0.0))
    scramble(model)
    assert model.item_residual is not None
    for name in ("a", "b", "c"):
        model.item_index(name)
    model.scenario_index("books")
    with torch.no_grad():
        model.item_residual.table.weight[1:4] = torch.randn(3, DIM)
    return model.train()  # serving must switch to eval mode itself (dropout 0.3)


def test_item_vectors_are_unit_deterministic_and_fall_back_for_unknowns() -> None:
    model = trained_with_ids()
    base = torch.randn(5, DIM) * 2.0
    ids = ["a", "b", "zz", "c", "new"]
    scen: list[str | None] = ["books", None, "books", "never-seen", "books"]
    kept = base.clone()
    out = model.item_vectors(ids, base, scen)
    assert out.shape == (5, DIM) and not out.requires_grad
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))
    assert torch.equal(out, model.item_vectors(ids, base, scen))  # eval: no dropout
    assert model.training and torch.equal(base, kept)
    assert model.items == {"a": 1, "b": 2, "c": 3} and model.scenarios == {"books": 1}
    model.eval()
    with torch.no_grad():
        books = model.scenario_index("books")
        # unknown items: exactly the text projection; unknown scenario: the shared gate
        # (row by row vs batched matrix products: equal up to float rounding)
        close = dict(atol=1e-6, rtol=0.0)
        torch.testing.assert_close(out[2], model.project(base[2:3], books)[0], **close)
        torch.testing.assert_close(out[4], model.project(base[4:5], books)[0], **close)
        torch.testing.assert_close(
            out[3], model.project(base[3:4], 0, torch.tensor([3]))[0], **close
        )
        # known items: the residual moves them away from the text-only vector
        assert (out[0] - model.project(base[0:1], books)[0]).abs().max() > 1e-2
    assert model.item_vectors([], torch.zeros(0, DIM), []).shape == (0, DIM)
    with pytest.raises(ValueError, match="same n"):
        model.item_vectors(["a"], base, ["books"])


def test_without_id_table_item_ids_are_ignored() -> None:
    model = RecAdapter(cfg(max_items=0)).eval()
    base = torch.randn(3, DIM)
    assert model.item_index("a") == 0 and model.items == {}
    with torch.no_grad():
        assert torch.equal(
            model.item_vectors(["a", "b", "c"], base, [None] * 3), model.project(base)
        )


@pytest.mark.parametrize("kind", ["mean", "attention", "gru"])
def test_recompute_and_step_by_step_fold_agree(kind: str) -> None:
    model = trained_with_ids(kind)
    scramble(model.aggregator, 0.5)
    base = torch.randn(7, DIM)
    rec = model.item_vectors(list("abcdefg"), base, ["books"] * 7)
    order = torch.tensor([[0, 1, 2, 3, 4, 5], [6, 2, 0, 0, 0, 0]])
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    # the batch path reads the valid items wherever they are; fold only the valid ones
    users = model.user_from_items(rec[order], mask)
    assert not users.requires_grad
    torch.testing.assert_close(users.norm(dim=-1), torch.ones(2))
    for row in range(2):
        state = model.initial_state(1)
        for col in order[row][mask[row]].tolist():
            state = model.step_items(state, rec[col : col + 1])
        torch.testing.assert_close(model.readout(state)[0], users[row], atol=1e-5, rtol=0)
    assert torch.equal(model.readout(model.initial_state(2)), torch.zeros(2, DIM))
    with pytest.raises(ValueError, match="rec_items"):
        model.step_items(model.initial_state(1), torch.randn(1, DIM + 1))
    with pytest.raises(ValueError, match="items"):
        model.user_from_items(torch.randn(2, 3, DIM + 1), None)


def test_user_from_items_matches_user_for_text_only_items() -> None:
    model = RecAdapter(cfg(aggregator="gru")).eval()
    scramble(model)
    history = torch.randn(2, 4, DIM)
    rec = model.item_vectors([str(i) for i in range(8)], history.reshape(8, DIM), [None] * 8)
    with torch.no_grad():
        expected = user_vectors(model, history)
    torch.testing.assert_close(model.user_from_items(rec.reshape(2, 4, DIM)), expected)


def test_item_map_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    model = trained_with_ids("gru")
    base = unit(torch.randn(4, DIM))
    ids, scen = ["c", "a", "zz", "b"], ["books", "books", None, "x"]
    save_adapter(model, tmp_path, 4)
    loaded = load_adapter(tmp_path / "v000004")
    assert loaded.items == model.items and loaded.version == 4
    assert torch.equal(loaded.item_vectors(ids, base, scen), model.item_vectors(ids, base, scen))
    rec = model.item_vectors(ids, base, scen).unsqueeze(0)
    assert torch.equal(loaded.user_from_items(rec), model.user_from_items(rec))
    assert loaded.item_index("d") == 4  # new ids continue after the saved ones
