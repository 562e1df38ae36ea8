"""Tests of :mod:`strongticket.essential`: N:M masks, global magnitude sweeps, the two essential-sparsity
definitions on synthetic curves, weight snapshots over training, and a dense run swept end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from strongticket.essential import (
    NMPattern,
    WeightSnapshots,
    essential_by_drop,
    essential_sparsity,
    global_magnitude_masks,
    knee_by_chord,
    load_dense_run,
    magnitude_ranks,
    nm_mask,
    parse_pattern,
    parse_sparsities,
    sweep_snapshot,
    sweep_accuracy,
    train_dense_with_snapshots,
)
from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.data import Dataset, load_dataset
from strongticket.train.loop import evaluate
from strongticket.train.run import train_run

# ----------------------------------------------------------------------------------------- N:M


@st.composite
def weights(draw: st.DrawFn) -> torch.Tensor:
    """A Linear or Conv2d weight, Gaussian or with many tied magnitudes."""
    shape = draw(st.sampled_from(["linear", "conv"]))
    rows = draw(st.integers(1, 5))
    if shape == "linear":
        dims: tuple[int, ...] = (rows, draw(st.integers(1, 30)))
    else:
        dims = (rows, draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    seed = draw(st.integers(0, 2**31 - 1))
    w = torch.randn(dims, generator=torch.Generator().manual_seed(seed))
    if draw(st.booleans()):  # ties: magnitudes from a few values, signs mixed
        w = torch.sign(w) * torch.randint(0, 3, dims, generator=torch.Generator().manual_seed(seed + 1)).float()
    return w


@given(data=st.data(), w=weights(), m=st.integers(1, 9))
def test_nm_mask_keeps_exactly_n_largest_in_every_group_of_m(data: st.DataObject, w: torch.Tensor, m: int) -> None:
    n = data.draw(st.integers(1, m))
    mask = nm_mask(w, n, m)
    assert mask.shape == w.shape and mask.dtype == torch.bool
    a, k = w.abs().reshape(w.shape[0], -1), mask.reshape(w.shape[0], -1)
    fan_in = a.shape[1]
    for start in range(0, fan_in, m):
        ga, gk = a[:, start:start + m], k[:, start:start + m]
        size = ga.shape[1]
        assert (gk.sum(1) == min(n, size)).all()  # exactly N per full group, min(N, r) in the short last one
        for r in range(len(ga)):
            if gk[r].any() and (~gk[r]).any():
                assert ga[r][gk[r]].min() >= ga[r][~gk[r]].max()  # the kept are the largest |w|


def test_nm_mask_convention_2_of_4_kept_and_conv_fan_in_flattened() -> None:
    w = torch.tensor([[0.1, -0.9, 0.3, 0.2, 5.0, 4.0, -3.0, 0.0]])
    assert nm_mask(w, 2, 4).tolist() == [[False, True, True, False, True, True, False, False]]
    conv = torch.arange(1.0, 9.0).reshape(1, 2, 2, 2)  # fan-in (in, kh, kw) = 1..8 in memory order
    assert nm_mask(conv, 1, 4).reshape(-1).tolist() == [False, False, False, True, False, False, False, True]


@pytest.mark.parametrize("text", ["5:4", "0:4", "2:0", "a:b", "4", "2:4:8", "-1:4", ""])
def test_parse_pattern_rejects_bad_patterns_in_one_line(text: str) -> None:
    with pytest.raises(InputError, match=r"--pattern must be N:M .*got") as exc:
        parse_pattern(text)
    assert "\n" not in str(exc.value)


def test_parse_pattern_reads_kept_then_group() -> None:
    p = parse_pattern(" 2 : 4 ")
    assert (p.n, p.m, p.name, p.family, p.nominal_sparsity) == (2, 4, "2:4", "N:4", 0.5)


def test_parse_sparsities_ranges_lists_and_errors() -> None:
    assert parse_sparsities("0.5,0:0.2:0.1") == (0.0, 0.1, 0.2, 0.5)
    assert len(parse_sparsities("0:0.98:0.02,0.99")) == 51
    for bad in ("1", "0.2,x", "0:0.5:0", "-0.1"):
        with pytest.raises(InputError, match="--sparsities"):
            parse_sparsities(bad)
    with pytest.raises(InputError, match=r"--sparsities range '0.5:0.1:0.1' is empty: .* START <= STOP"):
        parse_sparsities("0.5:0.1:0.1,0.9")  # silently only 0 and 0.9, not the range the user meant


# ----------------------------------------------------------------------------------------- unstructured


@given(seed=st.integers(0, 2**31 - 1), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       s1=st.floats(0, 0.99), s2=st.floats(0, 0.99))
def test_global_magnitude_masks_remove_exact_counts_of_smallest_and_nest(seed: int, sizes: list[int], s1: float,
                                                                         s2: float) -> None:
    g = torch.Generator().manual_seed(seed)
    params = {f"l{i}": torch.randn(n, 3, generator=g) for i, n in enumerate(sizes)}
    ranks = magnitude_ranks(params)
    total = ranks.numel()
    lo, hi = sorted((s1, s2))
    m_lo, m_hi = global_magnitude_masks(params, ranks, lo), global_magnitude_masks(params, ranks, hi)
    kept = sum(int(m.sum()) for m in m_hi.values())
    assert kept == total - round(hi * total)
    flat_w = torch.cat([w.abs().reshape(-1) for w in params.values()])
    flat_m = torch.cat([m.reshape(-1) for m in m_hi.values()])
    if flat_m.any() and (~flat_m).any():
        assert flat_w[flat_m].min() >= flat_w[~flat_m].max()
    for k in params:  # the mask at a higher sparsity is inside the one at a lower sparsity
        assert not (m_hi[k] & ~m_lo[k]).any()


def _hand_model() -> tuple[nn.Module, Dataset]:
    """y = [sum_i c_i x_i > 0] with |c_i| spread over three decades: magnitude order is importance order."""
    d = 64
    g = torch.Generator().manual_seed(0)
    c = torch.logspace(0, -3, d) * torch.where(torch.rand(d, generator=g) < 0.5, -1.0, 1.0)
    x = torch.randn(4000, 1, 1, d, generator=g)
    y = (x.reshape(len(x), d) @ c > 0).long()
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([-c, c]) / 2)
    data = Dataset("hand", x[:10], y[:10], x, y, num_classes=2, input_shape=(1, 1, d))
    return net, data


def test_sweep_of_a_hand_model_starts_at_dense_and_falls_monotone_ish() -> None:
    net, data = _hand_model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grid = parse_sparsities("0:0.95:0.05")
    snap = sweep_snapshot(net, before, data, ["1.weight"], sparsities=grid, patterns=[NMPattern(2, 4)])
    u = snap.curve("unstructured")
    assert snap.dense_accuracy == 1.0 and u.accuracy[0] == 1.0
    assert u.sparsity == tuple(round(s * 128) / 128 for s in grid)
    assert all(b <= a + 0.02 for a, b in zip(u.accuracy, u.accuracy[1:]))  # small weights go first
    assert u.accuracy[-1] < 0.9 and u.accuracy[5] > 0.99  # 25 % of the smallest weights cost (almost) nothing
    nm = snap.curve("N:4")
    assert nm.labels == ("4:4", "3:4", "2:4", "1:4") and nm.sparsity == (0.0, 0.25, 0.5, 0.75)
    assert snap.points["2:4"] == {"sparsity": 0.5, "accuracy": nm.accuracy[2]}
    for k, v in net.state_dict().items():  # the network is left as it came
        assert torch.equal(v, before[k])


def test_sweep_accuracy_matches_the_loops_evaluate() -> None:
    net, data = _hand_model()
    with torch.no_grad():
        net[1].weight.add_(torch.randn(net[1].weight.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    assert sweep_accuracy(net.eval(), data.test_x, data.test_y, batch_size=999) == \
        evaluate(net, data.test_x, data.test_y)["accuracy"]


# ----------------------------------------------------------------------------------------- the knee


def test_flat_then_linear_drop_knee_and_drop_point_are_the_breakpoint() -> None:
    s = np.round(np.arange(0, 1.0, 0.02), 2)
    acc = np.where(s <= 0.6, 0.98, 0.98 - (s - 0.6) * 2.2)  # 2.2 points lost per 0.01 past 0.6
    assert knee_by_chord(s, acc) == pytest.approx(0.6)
    assert essential_by_drop(s, acc) == (pytest.approx(0.6), False)  # 0.62 is 4.4 points down
    assert essential_by_drop(s, acc, max_drop=0.05) == (pytest.approx(0.62), False)


@pytest.mark.parametrize("p", [4, 8, 16])
def test_knee_of_one_minus_x_to_the_p_is_where_the_slope_meets_the_chord(p: int) -> None:
    s = np.linspace(0, 1, 201)
    knee = knee_by_chord(s, 1 - s**p)
    assert knee == pytest.approx((1 / p) ** (1 / (p - 1)), abs=0.005)  # d/dx (1 - x^p - (1 - x)) = 0


def test_a_straight_or_flat_curve_has_no_knee_and_a_flat_one_is_censored() -> None:
    s = np.linspace(0, 0.9, 10)
    assert knee_by_chord(s, 0.9 - 0.5 * s) is None
    assert knee_by_chord(s, 0.5 + 0.4 * (1 - s) ** 2) is None  # convex decline: below its chord
    assert knee_by_chord(s, np.full(10, 0.7)) is None
    assert essential_by_drop(s, np.full(10, 0.7)) == (pytest.approx(0.9), True)


def test_drop_point_uses_the_prefix_so_a_tail_recovery_does_not_count() -> None:
    s = [0.0, 0.2, 0.4, 0.6, 0.8]
    acc = [0.95, 0.95, 0.90, 0.60, 0.945]
    assert essential_by_drop(s, acc) == (0.2, False)
    assert essential_by_drop(s, acc, reference=0.99) == (0.0, False)  # the first point is already 4 down


def test_curve_inputs_are_checked() -> None:
    with pytest.raises(InputError, match="strictly increasing"):
        knee_by_chord([0, 0.5, 0.4], [1, 1, 1])
    with pytest.raises(InputError, match="same length"):
        essential_by_drop([0, 0.5], [1])
    with pytest.raises(InputError, match="finite"):
        knee_by_chord([0, 0.5, 0.6], [1, float("nan"), 1])


# ----------------------------------------------------------------------------------------- training, runs


def _config(epochs: int = 2, method: str = "dense", density: float = 1.0) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=64), model=ModelConfig(model="lenet300100",
                     width=0.25), optim=OptimConfig(lr=0.05, momentum=0.9, epochs=epochs),
                     prune=PruneConfig(method=method, density=density), seed=3)


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("essential") / "dense"
    train_run(_config(), out, device="cpu")
    return out


def test_snapshots_end_on_the_weights_strongticket_train_writes(dense_run: Path) -> None:
    from safetensors.torch import load_file

    from strongticket.train.run import resolve_config

    data = load_dataset("digits")
    cfg = resolve_config(_config(), data)
    _, snaps, _ = train_dense_with_snapshots(cfg, data, per_epoch=3)
    spe = math.ceil(len(data.train_y) / 64)
    assert [s[1] for s in snaps.snapshots] == [round(spe * j / 3) + e * spe for e in range(2) for j in (1, 2, 3)]
    assert snaps.snapshots[-1][0] == 2.0
    saved = load_file(str(dense_run / "model.safetensors"))
    for k, v in snaps.snapshots[-1][2].items():
        assert torch.equal(v, saved[k]), k


def test_weight_snapshots_need_a_positive_count() -> None:
    with pytest.raises(InputError, match="--snapshots-per-epoch"):
        WeightSnapshots(None, 0)  # type: ignore[arg-type]


def test_a_dense_run_swept_reproduces_its_accuracy(dense_run: Path) -> None:
    res = essential_sparsity(run_dir=dense_run, sparsities=parse_sparsities("0:0.9:0.1"))
    assert len(res.snapshots) == 1 and res.final.step > 0
    assert res.final.dense_accuracy == res.source["run_test_accuracy"]
    assert [c.pattern for c in res.final.curves] == ["unstructured", "N:4", "N:8"]
    assert set(res.final.points) == {"2:4", "4:8"}
    assert res.prunable == 64 * 75 + 75 * 25 + 25 * 10  # digits: 8x8 inputs, widths 300, 100 x 0.25
    summary = res.summary()
    assert summary["essential_unstructured"] == res.final.curve("unstructured").essential
    assert "| unstructured |" in res.to_markdown()


def test_load_dense_run_refuses_pruned_unfinished_and_broken_runs(dense_run: Path, tmp_path: Path) -> None:
    pruned = tmp_path / "random"
    train_run(_config(epochs=1, method="random", density=0.5), pruned, device="cpu")
    with pytest.raises(InputError, match="is a random run .*not a dense one"):
        load_dense_run(pruned)
    with pytest.raises(InputError, match="no config.json"):
        load_dense_run(tmp_path)
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(dense_run, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no model.safetensors"):
        load_dense_run(broken)
    (broken / "summary.json").unlink()
    with pytest.raises(InputError, match="not finished"):
        load_dense_run(broken)


def test_driver_takes_exactly_one_source_and_a_dense_config(dense_run: Path) -> None:
    with pytest.raises(InputError, match="exactly one of --run"):
        essential_sparsity()
    with pytest.raises(InputError, match="exactly one of --run"):
        essential_sparsity(run_dir=dense_run, config=_config())
    with pytest.raises(InputError, match="must describe a dense run"):
        essential_sparsity(config=_config(method="snip", density=0.5))
