"""Global Sparse Momentum SGD: the active set is the global top-Q by |g ⊙ w|, passive weights decay by weight decay
alone (and towards zero over a run), exact density, per-layer densities and the pruned accuracy in the summary,
the lottery variant, the weight-decay check, and resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import Callback, Trainer
from strongticket.train.masking import MaskedModel, init_weights
from strongticket.train.methods.gsm import GlobalSparseMomentum, active_mask
from strongticket.train.run import train_run
from strongticket.train.rundir import RunDir
from tests.train.test_resume import check_kills


def config(density: float = 0.1, epochs: int = 2, weight_decay: float = 0.05, **prune) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9, weight_decay=weight_decay),
                     prune=PruneConfig(method="gsm", density=density, **prune), seed=1)


def test_active_set_is_the_global_top_q_by_gradient_times_weight() -> None:
    w = [torch.tensor([1.0, -2.0, 3.0]), torch.tensor([[0.5, 4.0]])]
    g = [torch.tensor([1.0, 1.0, -0.1]), torch.tensor([[10.0, 0.0]])]  # |g w| = 1, 2, 0.3 | 5, 0
    keep = active_mask(w, g, 2)
    assert keep[0].tolist() == [False, True, False] and keep[1].tolist() == [[True, False]]
    keep = active_mask(w, g, 3)
    assert keep[0].tolist() == [True, True, False] and keep[1].tolist() == [[True, False]]
    assert sum(int(k.sum()) for k in active_mask(w, [None, g[1]], 2)) == 2  # None counts as a zero gradient


def test_callback_zeroes_exactly_the_passive_gradients_and_fills_missing_ones() -> None:
    a, b = nn.Parameter(torch.tensor([1.0, -2.0, 3.0])), nn.Parameter(torch.tensor([0.5, 4.0]))
    a.grad = torch.tensor([1.0, 1.0, -0.1])
    b.grad = None
    GlobalSparseMomentum([a, b], 2).on_backward(None)  # type: ignore[arg-type]
    assert a.grad.tolist() == [1.0, 1.0, 0.0]  # |g w| = 1, 2, 0.3: the top two keep their gradient
    # a missing gradient becomes zeros, so that the optimiser still applies weight decay to that tensor
    assert b.grad is not None and b.grad.tolist() == [0.0, 0.0]


def weight_decay_factor(steps: int, lr: float, mu: float, wd: float) -> float:
    """How much momentum SGD with weight decay shrinks a weight whose gradient is zero for ``steps`` steps
    (fresh optimiser, constant rate): buf_1 = wd w_0, buf_t = mu buf_{t-1} + wd w, w -= lr buf."""
    w, buf = 1.0, None
    for _ in range(steps):
        buf = wd * w if buf is None else mu * buf + wd * w
        w -= lr * buf
    return w


class RecordActive(Callback):
    """After GSM's callback: which entries had a nonzero gradient at some step."""

    def __init__(self, weights: list[torch.Tensor]) -> None:
        self.weights = weights
        self.ever = [torch.zeros_like(w, dtype=torch.bool) for w in weights]

    def on_backward(self, trainer: Trainer) -> None:
        for e, w in zip(self.ever, self.weights):
            e |= w.grad != 0


def test_passive_weights_follow_the_weight_decay_law_exactly() -> None:
    """A weight with a zero gradient at every step moves only by weight decay through momentum SGD:
    w_T = c_T w_0, with c_T from the scalar recurrence buf_1 = wd w_0, buf_t = mu buf_{t-1} + wd w, w -= lr buf."""
    data = load_dataset("digits").subset(256, 64, seed=0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    init_weights(net, "default", torch.Generator().manual_seed(0))
    weights = [net[1].weight, net[3].weight]
    start = [w.detach().clone() for w in weights]
    lr, mu, wd = 0.05, 0.9, 0.1
    opt = OptimConfig(epochs=3, lr=lr, momentum=mu, weight_decay=wd)
    rec = RecordActive(weights)
    q = round(0.05 * sum(w.numel() for w in weights))
    trainer = Trainer(MaskedModel(net), data, opt, list(net.parameters()), seed=0, batch_size=64,
                      callbacks=[GlobalSparseMomentum(weights, q), rec])
    trainer.run()
    w_ = weight_decay_factor(trainer.step, lr, mu, wd)
    passive = [~e for e in rec.ever]
    n_passive = sum(int(p.sum()) for p in passive)
    assert n_passive > 0.8 * sum(w.numel() for w in weights)
    for w, w0, p in zip(weights, start, passive):
        torch.testing.assert_close(w.detach()[p], w_ * w0[p], rtol=1e-5, atol=1e-7)
    assert w_ < 0.8  # and that law shrinks them


def test_gsm_prunes_to_the_exact_density_and_drives_passive_weights_towards_zero(tmp_path: Path) -> None:
    s = train_run(config(density=0.1, epochs=5, weight_decay=0.01), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.1 * s["prunable"])
    g = s["gsm"]
    assert g["q"] == s["kept"]
    assert g["passive_mean_abs_after"] < g["passive_mean_abs_before"]
    # |w| of every weight the final mask prunes, at the start (the dense phase's end) and the end of the GSM phase
    rd = RunDir(tmp_path / "run")
    before, after = rd.load_checkpoint("dense")[0], rd.load_checkpoint("gsm")[0]
    mask = load_file(tmp_path / "run" / "mask.safetensors")
    ratio = torch.cat([after[f"net.{n}"][~m].abs() / before[f"net.{n}"][~m].abs() for n, m in mask.items()])
    # at least 90 % of them shrank by the full weight-decay factor or more: they were passive (no gradient) nearly
    # throughout; with every gradient applied (plain SGD) a quarter of them grow instead
    c = weight_decay_factor(s["phases"]["gsm"]["step"], 0.05, 0.9, 0.01)
    assert c < 0.97 and float(ratio.quantile(0.9)) <= c * (1 + 1e-4)
    # the per-layer densities GSM found are in the summary (extras and layers) and in the mask line
    assert g["layer_densities"] == [r["density"] for r in s["layers"]]
    assert len(set(g["layer_densities"])) > 1  # one global ratio, not the same density per layer
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    mask_line = next(x for x in lines if x["event"] == "mask")
    assert list(mask_line["layers"].values()) == g["layer_densities"]
    pruned = next(x for x in lines if x["event"] == "gsm_pruned")
    # without gsm_lottery the result is the pruned GSM model, not retrained
    assert s["test_accuracy"] == pruned["test_accuracy"] == g["pruned_test_accuracy"]
    assert set(s["phases"]) == {"dense", "gsm"}


def test_lottery_variant_retrains_the_mask_from_the_initial_weights(tmp_path: Path) -> None:
    s = train_run(config(gsm_lottery=True), tmp_path / "run", device="cpu")
    assert set(s["phases"]) == {"dense", "gsm", "lottery"}
    assert s["kept"] == round(0.1 * s["prunable"])
    assert s["test_accuracy"] == s["gsm"]["lottery_test_accuracy"]


def test_gsm_refuses_zero_weight_decay_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--weight-decay must be > 0 for --method gsm.*got 0$"):
        train_run(config(weight_decay=0.0), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_gsm_resumes_identically_after_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # inside gsm (after the dense phase), inside lottery, and before the last metrics line
    points = [("save", 3), ("save", 5), ("log", -1)]
    check_kills(config(gsm_lottery=True), tmp_path, monkeypatch, points)


# ------------------------------------------------------------------------------------------ the GSM phase's optimiser


def record_optimizers(monkeypatch: pytest.MonkeyPatch) -> list[torch.optim.Optimizer]:
    """Every optimiser the runs build, in phase order (dense, gsm, lottery)."""
    from strongticket.train import loop

    made: list[torch.optim.Optimizer] = []
    original = loop.make_optimizer

    def spy(cfg, params):
        made.append(original(cfg, params))
        return made[-1]

    monkeypatch.setattr(loop, "make_optimizer", spy)
    return made


def test_gsm_phase_trains_at_its_own_learning_rate_and_momentum(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    made = record_optimizers(monkeypatch)
    s = train_run(config(gsm_lottery=True, gsm_lr=0.01, gsm_momentum=0.5), tmp_path / "run", device="cpu")
    dense, gsm, lottery = (o.param_groups for o in made)
    # constant schedule: the rate set for the last step is the phase's base rate
    assert [(g["lr"], g["momentum"]) for g in dense] == [(0.05, 0.9)]
    assert [(g["lr"], g["momentum"]) for g in lottery] == [(0.05, 0.9)]
    assert len(gsm) == 1 and gsm[0]["lr"] == pytest.approx(0.01, rel=1e-12) and gsm[0]["momentum"] == 0.5
    assert s["gsm"]["gsm_lr"] == 0.01 and s["gsm"]["gsm_momentum"] == 0.5


def test_unset_gsm_lr_and_momentum_train_exactly_as_the_optim_section(tmp_path: Path) -> None:
    default = train_run(config(epochs=1), tmp_path / "default", device="cpu")
    same = train_run(config(epochs=1, gsm_lr=0.05, gsm_momentum=0.9), tmp_path / "same", device="cpu")
    train_run(config(epochs=1, gsm_lr=0.01), tmp_path / "other", device="cpu")
    weights = {k: load_file(tmp_path / k / "model.safetensors") for k in ("default", "same", "other")}
    assert all(torch.equal(weights["default"][n], weights["same"][n]) for n in weights["default"])
    assert not all(torch.equal(weights["default"][n], weights["other"][n]) for n in weights["default"])
    assert default["test_accuracy"] == same["test_accuracy"]
    assert default["gsm"]["gsm_lr"] == 0.05 and default["gsm"]["gsm_momentum"] == 0.9


@pytest.mark.parametrize("change,message", [
    ({"prune": {"gsm_lr": 0.0}}, r"^prune.gsm_lr \(--gsm-lr\) must be > 0, got 0.0$"),
    ({"prune": {"gsm_momentum": 1.0}}, r"^prune.gsm_momentum \(--gsm-momentum\) must be in \[0, 1\), got 1.0$"),
    ({"prune": {"gsm_momentum": 0.9}, "optim": {"optimizer": "adam"}},
     r"^prune.gsm_momentum \(--gsm-momentum\) sets an SGD momentum, but optim.optimizer .* is 'adam'.*got 0.9$"),
])
def test_bad_gsm_phase_settings_are_one_line_errors_before_writing(change: dict, message: str,
                                                                    tmp_path: Path) -> None:
    with pytest.raises(InputError, match=message):
        train_run(config().with_updates(**change), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()
