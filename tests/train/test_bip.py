"""BiP: the implicit-gradient term on a hand-computed example, the alternation of the two levels (with
momentum and weight decay, which must not move the level that rests), exact densities, the pre-trained start,
and resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import Callback, Trainer
from strongticket.train.masking import MaskedModel, prunable_names
from strongticket.train.methods.bip import Bilevel, implicit_score_gradient, mask_overlap
from strongticket.train.run import train_run
from tests.train.test_resume import check_kills


def config(epochs: int = 2, **prune) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method="bip", **prune), seed=1)


def one_weight_pair(implicit: float) -> tuple[MaskedModel, Bilevel, torch.Tensor, torch.Tensor]:
    """``y = θ₀ m₀ x₀ + θ₁ m₁ x₁``, θ = (2, -3), scores s = (-0.5, 0.1) (density 1/2 keeps entry 0), x = (3, 4),
    after the backward of ``ℓ = y``."""
    with torch.device("meta"):  # no random draw: the weights are set below
        net = nn.Linear(2, 1, bias=False)
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[2.0, -3.0]]))
    model = MaskedModel(net, scores={"weight": torch.tensor([[-0.5, 0.1]])}, score_density=0.5,
                        score_rule="global-topk")
    s = model.scores["weight"]
    cb = Bilevel([net.weight], {"weight": s}, {"weight": net.weight}, implicit)
    model(torch.tensor([[3.0, 4.0]])).sum().backward()
    return model, cb, net.weight, s


def test_upper_step_adds_the_implicit_term_computed_by_hand() -> None:
    # z = m ⊙ θ = (2, 0), g = ∂ℓ/∂z = x = (3, 4); ∂ℓ/∂θ = m ⊙ g = (3, 0);
    # straight-through: ∂ℓ/∂s = θ ⊙ g ⊙ sign(s) = (2·3·(-1), -3·4·1) = (-6, -12);
    # implicit: -λ (∂ℓ/∂θ)² sign(s) = -0.5 · (9, 0) · (-1, 1) = (4.5, 0)
    _, cb, w, s = one_weight_pair(0.5)
    assert torch.equal(w.grad, torch.tensor([[3.0, 0.0]]))
    assert torch.equal(s.grad, torch.tensor([[-6.0, -12.0]]))
    cb.on_backward(SimpleNamespace(step=1))
    assert torch.equal(s.grad, torch.tensor([[-1.5, -12.0]]))
    assert w.grad is None  # the network rests on an upper step


def test_implicit_term_keeps_kept_weights_kept_whatever_the_score_sign() -> None:
    g = torch.tensor([2.0, -2.0, 0.0])
    for sign in (1.0, -1.0):
        s = sign * torch.tensor([1.0, 1.0, 1.0])
        corr = implicit_score_gradient(g, s, 0.25)
        # a descent step s -= lr·corr moves |s| up where ∂ℓ/∂θ ≠ 0, not at all where it is 0 (a pruned entry)
        assert torch.equal(corr, -sign * torch.tensor([1.0, 1.0, 0.0]))
    with pytest.raises(InputError, match=r"weight gradient of shape \(3,\) does not match scores of shape \(2,\)"):
        implicit_score_gradient(g, torch.ones(2), 0.1)


def test_lower_step_drops_the_score_gradient_and_keeps_the_weights() -> None:
    _, cb, w, s = one_weight_pair(0.5)
    cb.on_backward(SimpleNamespace(step=0))
    assert s.grad is None
    assert torch.equal(w.grad, torch.tensor([[3.0, 0.0]]))


def test_no_implicit_term_leaves_the_straight_through_gradient() -> None:
    _, cb, _, s = one_weight_pair(0.0)
    cb.on_backward(SimpleNamespace(step=3))
    assert torch.equal(s.grad, torch.tensor([[-6.0, -12.0]]))


class Snapshots(Callback):
    """Record, after each step, whether the network and the scores changed in that step."""

    def __init__(self, model: MaskedModel) -> None:
        self.model = model
        self.rows: list[tuple[int, bool, bool]] = []
        self.prev = self._copy()

    def _copy(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return ([p.detach().clone() for p in self.model.net.parameters()],
                [s.detach().clone() for s in self.model.scores.values()])

    def on_step(self, trainer) -> None:  # noqa: D102
        now = self._copy()
        net_moved = any(not torch.equal(a, b) for a, b in zip(self.prev[0], now[0]))
        scores_moved = any(not torch.equal(a, b) for a, b in zip(self.prev[1], now[1]))
        self.rows.append((trainer.step - 1, net_moved, scores_moved))
        self.prev = now


def test_levels_alternate_and_momentum_never_moves_the_resting_level() -> None:
    data = load_dataset("digits").subset(256, 64, seed=0)
    net = build_model("fc2", num_classes=10, in_channels=1, image_size=8, width=0.25, seed=0)
    names = prunable_names(net)
    params = dict(net.named_parameters())
    model = MaskedModel(net, scores={n: params[n].detach().clone() for n in names}, score_density=0.3,
                        score_rule="global-topk")
    scores = {n: model.scores[n.replace(".", "__")] for n in names}
    network = list(net.parameters())
    cfg = OptimConfig(epochs=2, lr=0.05, momentum=0.9, weight_decay=1e-3)
    trainable = [{"params": network}, {"params": list(scores.values()), "lr_scale": 4.0}]
    snaps = Snapshots(model)
    trainer = Trainer(model, data, cfg, trainable, seed=0, batch_size=32,
                      callbacks=[Bilevel(network, scores, {n: params[n] for n in names}, 1e-2), snaps])
    trainer.run()
    assert len(snaps.rows) == 16
    for step, net_moved, scores_moved in snaps.rows:
        upper = step % 2 == 1
        assert net_moved != upper, f"step {step}: the network {'moved' if net_moved else 'stayed'}"
        assert scores_moved == upper, f"step {step}: the scores {'moved' if scores_moved else 'stayed'}"


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_bip_reaches_its_density_exactly_and_pruned_weights_are_zero(scope: str, tmp_path: Path) -> None:
    s = train_run(config(density=0.2, scope=scope), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.2 * s["prunable"])
    if scope == "layerwise":
        for layer in s["layers"]:
            assert layer["kept"] == max(1, round(0.2 * layer["numel"]))
    masks = load_file(str(tmp_path / "run" / "mask.safetensors"))
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    for name, m in masks.items():
        assert bool((weights[name][~m.bool()] == 0).all())
    assert set(s["phases"]) == {"dense", "bip"}
    b = s["bip"]
    assert (b["lower_steps"], b["upper_steps"]) == (3, 3)  # 2 epochs of 3 steps (384 images, batch 128)
    assert 0 < b["kept_from_magnitude"] <= 1
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["phase"] for x in lines if x["event"] == "mask"] == ["init", "final"]


def test_pretrained_start_skips_the_dense_phase_and_scores_start_at_its_magnitudes(tmp_path: Path) -> None:
    dense = RunConfig(data=config().data, model=config().model, optim=config().optim,
                      prune=PruneConfig(method="dense"), seed=1)
    train_run(dense, tmp_path / "dense", device="cpu")
    cfg = config(density=0.2)
    cfg = cfg.with_updates(model={"init_from": str(tmp_path / "dense")})
    s = train_run(cfg, tmp_path / "run", device="cpu")
    assert set(s["phases"]) == {"bip"} and s["bip"]["dense_phase"] is False
    # the first mask is the global magnitude mask of the pre-trained weights
    w = load_file(str(tmp_path / "dense" / "model.safetensors"))
    flat = torch.cat([w[n].abs().reshape(-1) for n in s["prunable_names"]])
    k = round(0.2 * flat.numel())
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    init = next(x for x in lines if x["event"] == "mask" and x["phase"] == "init")
    top = torch.zeros(flat.numel(), dtype=torch.bool)
    top[flat.topk(k).indices] = True
    sizes = [w[n].numel() for n in s["prunable_names"]]
    for name, part in zip(s["prunable_names"], top.split(sizes)):
        assert init["layers"][name] == pytest.approx(float(part.float().mean()))


def test_mask_overlap_counts_the_kept_entries_both_keep() -> None:
    a = {"w": torch.tensor([True, True, False, True])}
    b = {"w": torch.tensor([True, False, False, False])}
    assert mask_overlap(a, b) == pytest.approx(1 / 3)
    assert mask_overlap({"w": torch.zeros(4, dtype=torch.bool)}, b) == 1.0


def test_resume_after_a_kill_gives_the_identical_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kills: after the dense phase, mid-bip, after the initial and the final mask lines, mid fine-tuning, end
    check_kills(config(density=0.3, bip_finetune=True), tmp_path, monkeypatch,
                [("save", 2), ("save", 3), ("log", 3), ("log", 6), ("save", 5), ("log", -1)])


# ------------------------------------------------------------------------------------------ the channel variant


def channel_config(density: float = 0.25, **prune) -> RunConfig:
    cfg = config(density=density, bip_granularity="channel", **prune)
    return cfg.with_updates(model={"model": "conv2"})


def test_implicit_term_of_a_channel_score_sums_over_its_weights() -> None:
    g = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
    s = torch.tensor([[0.7], [-0.2]])
    got = implicit_score_gradient(g, s, 0.1)
    assert got.shape == (2, 1)
    torch.testing.assert_close(got, torch.tensor([[-0.1 * 14.0], [0.1 * 1.25]]))  # -(1/γ) Σ g² · sign(s)
    with pytest.raises(InputError, match=r"weight gradient of shape \(2, 3\) does not match scores of shape \(2, 2\)"):
        implicit_score_gradient(g, torch.ones(2, 2), 0.1)


def test_a_channel_score_gets_the_straight_through_gradient_summed_over_its_channel() -> None:
    with torch.device("meta"):
        net = nn.Linear(3, 2, bias=False)
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]]))
    model = MaskedModel(net, scores={"weight": torch.tensor([[0.4], [-0.9]])}, score_density=0.5,
                        score_rule="global-topk")
    x = torch.tensor([[1.0, 2.0, 3.0]])
    out = model(x)
    # density 1/2 of two channels: only neuron 1 (|s| = 0.9) is kept, whole
    assert out[0, 0].item() == 0.0 and out[0, 1].item() == pytest.approx(3.0 + 2.0 - 3.0)
    out.sum().backward()
    # dℓ/dm_c = Σ_i θ_ci x_i, times sign(s_c)
    torch.testing.assert_close(model.scores["weight"].grad, torch.tensor([[1.0 - 4.0 + 1.5], [-(3.0 + 2.0 - 3.0)]]))


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_channel_variant_keeps_the_exact_channel_count_and_prunes_whole_channels(scope: str,
                                                                                  tmp_path: Path) -> None:
    s = train_run(channel_config(density=0.25, scope=scope), tmp_path / "run", device="cpu")
    masks = load_file(str(tmp_path / "run" / "mask.safetensors"))
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    out_layer = s["prunable_names"][-1]
    assert bool(masks[out_layer].all())  # the classes are never pruned
    kept_channels = 0
    for name in s["prunable_names"][:-1]:
        m = masks[name].reshape(masks[name].shape[0], -1)
        whole = m.all(dim=1)
        assert bool((whole | ~m.any(dim=1)).all()), f"{name}: a channel is partly kept"
        w = weights[name].reshape(m.shape)
        assert bool((w[~whole] == 0).all()), f"{name}: a pruned channel has a nonzero weight"
        kept_channels += int(whole.sum())
        if scope == "layerwise":
            assert int(whole.sum()) == max(1, round(0.25 * m.shape[0]))
    b = s["bip"]
    assert b["channels"] == 16 + 16 + 64 + 64 and b["granularity"] == "channel"
    assert b["channels_kept"] == kept_channels == (40 if scope == "global" else 4 + 4 + 16 + 16)
    assert b["channel_density"] == kept_channels / 160
    assert s["kept"] == sum(int(m.sum()) for m in masks.values())  # the weight count the channels imply
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = next(x for x in lines if x["event"] == "mask" and x["phase"] == "final")
    assert final["kept"] == s["kept"]


def test_channel_variant_starts_from_the_channels_of_largest_mean_magnitude(tmp_path: Path) -> None:
    from strongticket.train.methods.bip import channel_scores

    w = torch.tensor([[[[1.0, -1.0]]], [[[0.1, 4.0]]], [[[0.0, 0.5]]]])
    assert channel_scores(w).shape == (3, 1, 1, 1)
    torch.testing.assert_close(channel_scores(w).reshape(-1), torch.tensor([1.0, 2.05, 0.25]))
    s = train_run(channel_config(density=0.25), tmp_path / "run", device="cpu")
    assert 0 < s["bip"]["kept_from_magnitude"] <= 1


def test_channel_variant_refuses_prune_bias_before_writing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^bip with --bip-granularity channel .* prune.prune_bias \(--prune-bias\) "
                                         r"is not supported with it, got true$"):
        train_run(channel_config(prune_bias=True), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_channel_variant_resumes_identically_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_kills(channel_config(density=0.3, bip_finetune=True), tmp_path, monkeypatch, [("save", 3), ("log", 6)])
