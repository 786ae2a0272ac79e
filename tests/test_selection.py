"""training/common.Selection: the best checkpoint kept, early stop, restore with a smaller learning rate."""

from __future__ import annotations

import torch

from training.common import Selection


def test_keeps_the_best_restores_it_and_stops_after_patience(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    selection = Selection(tmp_path / "best.pt", patience=2, restore=True, lr_decay=0.5)
    checkpoint = lambda: {"state_dict": {k: v.clone() for k, v in model.state_dict().items()}}  # noqa: E731
    assert not selection.update(0.8, checkpoint(), model, opt)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not selection.update(0.7, checkpoint(), model, opt)  # worse: back to the best weights, half the lr
    assert torch.equal(model.weight, best) and opt.param_groups[0]["lr"] == 0.5 and selection.best == 0.8
    assert selection.update(0.6, checkpoint(), model, opt)  # patience spent


def test_without_restore_the_weights_stay_and_a_gain_resets_patience(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    selection = Selection(tmp_path / "best.pt", patience=2)
    state = {"state_dict": model.state_dict()}
    assert not selection.update(0.5, state, model, opt)
    assert not selection.update(0.4, state, model, opt)
    assert not selection.update(0.9, state, model, opt) and selection.bad == 0
    assert not selection.update(0.1, state, model, opt) and opt.param_groups[0]["lr"] == 1.0
    assert not Selection(tmp_path / "x.pt", 1).out_of_time(1)
    assert Selection(tmp_path / "x.pt", 1, budget_s=1e-9).out_of_time(2)
