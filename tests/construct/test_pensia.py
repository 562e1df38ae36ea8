"""The Pensia 2L construction: exact block identity, bit-identical survivors, reproduction, bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from strongticket.construct import malach, pensia
from strongticket.construct.blocks import block_coefficients, block_parameter_names
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.distributions import WeightDistribution
from strongticket.ticket import Ticket


def small_target(seed: int = 0, bias: bool = False, scale: float = 0.5) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(5, 4, bias=bias), nn.ReLU(), nn.Linear(4, 3, bias=bias))
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(scale)
    return m.eval()


@pytest.fixture(scope="module")
def ticket() -> Ticket:
    return pensia.construct(small_target(), per_weight_eps=0.02, samples=10, seed=3, solver="exact",
                            strict=False)


def test_pruned_block_equals_the_two_product_sums_exactly(ticket):
    """sum_h v_h relu(u_h x) == (sum_{S+} v u) relu(x) + (sum_{S-} v |u|) relu(-x), in exact rationals."""
    w = ticket.random_weights()
    n1, n2 = block_parameter_names(ticket.spec)[0]
    m1, k1 = w[n1].numpy(), ticket.masks[n1].numpy()
    m2, k2 = w[n2].numpy(), ticket.masks[n2].numpy()
    a_pos, a_neg = block_coefficients(m1, k1, m2, k2)
    relu = lambda z: max(z, Fraction(0))  # noqa: E731
    for j in range(m1.shape[1]):
        for x in (Fraction(3, 7), Fraction(-5, 11)):
            inp = [Fraction(0)] * m1.shape[1]
            inp[j] = x
            hidden = [relu(sum(Fraction(float(m1[h, i])) * inp[i] for i in range(m1.shape[1]) if k1[h, i]))
                      for h in range(m1.shape[0])]
            for k in range(m2.shape[0]):
                out = sum(Fraction(float(m2[k, h])) * hidden[h] for h in range(m1.shape[0]) if k2[k, h])
                sp = sum(Fraction(float(m2[k, h])) * Fraction(float(m1[h, j])) for h in range(m1.shape[0])
                         if k2[k, h] and k1[h, j] and m1[h, j] > 0)
                sn = sum(Fraction(float(m2[k, h])) * abs(Fraction(float(m1[h, j]))) for h in range(m1.shape[0])
                         if k2[k, h] and k1[h, j] and m1[h, j] < 0)
                assert out == sp * relu(x) + sn * relu(-x)
                assert abs(float(sp) - a_pos[k, j]) < 1e-12 and abs(float(sn) - a_neg[k, j]) < 1e-12


def test_hidden_neurons_are_univariate_and_masks_block_diagonal(ticket):
    n1, _ = block_parameter_names(ticket.spec)[0]
    k1 = ticket.masks[n1].numpy()
    assert k1.sum(axis=1).max() <= 1
    H = ticket.provenance["hidden_per_input"]
    rows, cols = np.nonzero(k1)
    assert np.all(rows // H == cols)
    assert len(ticket.spec.linear_layers) == 4  # depth 2L


def test_surviving_weights_equal_regenerated_random_weights(ticket):
    regen = WeightDistribution.uniform().generate(ticket.spec, 3)
    for name, p in ticket.to_module().state_dict().items():
        m = ticket.masks[name]
        assert torch.equal(p[m], regen[name][m]) and not p[~m].any()


def test_recorded_errors_match_recomputed_block_errors(ticket):
    from strongticket.verify.certified import per_weight_errors

    (w, e_pos, e_neg), _ = per_weight_errors(ticket)
    np.testing.assert_allclose(np.abs(e_pos), ticket.arrays["errors.block0.pos"].numpy(), atol=1e-12)
    np.testing.assert_allclose(np.abs(e_neg), ticket.arrays["errors.block0.neg"].numpy(), atol=1e-12)


def test_ticket_is_reproduced_from_its_directory_alone(ticket, tmp_path):
    ticket.save(tmp_path / "t")
    back = Ticket.load(tmp_path / "t")
    again = pensia.construct(small_target(), per_weight_eps=0.02, samples=10, seed=back.seed, solver="exact",
                             strict=False)
    assert all(torch.equal(again.masks[k], back.masks[k]) for k in back.masks)
    x = torch.randn(7, 5)
    assert torch.equal(back.to_module()(x), ticket.to_module()(x))


def test_each_weight_within_eps_when_n_is_large_enough():
    t = pensia.construct(small_target(1), per_weight_eps=0.01, samples=12, seed=0, solver="exact", strict=False)
    summary = t.provenance["layers"][0]["errors"]
    assert summary["max"] == pytest.approx(t.arrays["errors.block0.pos"].max().item())
    assert t.provenance["max_error"] <= 0.01 and t.provenance["weights_above_eps"] == 0


def test_sparsest_keeps_no_more_than_min_error():
    kw = dict(per_weight_eps=0.05, samples=8, seed=2, solver="exact", strict=False)
    a = pensia.construct(small_target(), objective="min_error", **kw)
    b = pensia.construct(small_target(), objective="sparsest", **kw)
    assert b.num_kept <= a.num_kept


def test_biases_go_through_the_constant_channel_within_the_certified_bound():
    """A construction that dropped the biases errs by ~0.18 here; the ticket must stay within eps' * |x|."""
    from strongticket.verify.certified import certified_bound

    target = small_target(bias=True, scale=0.3)
    eps = 0.02
    t = pensia.construct(target, per_weight_eps=eps, samples=12, seed=1)
    assert t.spec.input_constant and t.spec.layers[0].in_features == 6
    x = torch.randn(50, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = x / x.norm(dim=1, keepdim=True)
    with torch.no_grad():
        err = float((t.to_module(torch.float64)(x) - target.double()(x)).norm(dim=1).max())
    bound = certified_bound(t, target.double(), radius=1.0).bound
    assert err <= bound <= eps


@pytest.mark.parametrize("kwargs, message", [
    (dict(per_weight_eps=0.0, samples=4), r"per_weight_eps must be in \(0, 1\)"),
    (dict(per_weight_eps=1.5, samples=4), r"in \(0, 1\)"),
    (dict(eps=-1.0, samples=4), r"eps must be in \(0, 1\)"),
    (dict(per_weight_eps=0.1, samples=4, objective="fastest"), "objective"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        pensia.construct(small_target(), **kwargs)


def test_unsupported_target_is_named():
    with pytest.raises(InputError, match="Tanh|tanh") as info:
        pensia.construct(nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1)), per_weight_eps=0.1, samples=4)
    assert "supports" in str(info.value)
    with pytest.raises(InputError, match="Conv2d"):
        pensia.construct(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 1)), per_weight_eps=0.1,
                         samples=4, input_shape=(1, 4, 4))


def test_too_few_samples_is_infeasible_with_a_clear_message():
    with pytest.raises(InfeasibleError, match="samples per weight"):
        pensia.construct(small_target(), per_weight_eps=1e-4, samples=2, seed=0)


def test_every_instance_has_exactly_n_candidates_and_the_block_size_is_recorded(ticket):
    prov = ticket.provenance
    assert prov["samples_per_weight"] == 10
    for li in prov["layers"]:
        assert li["candidates_per_instance"] == {"min": 10, "mean": 10.0, "max": 10}
        assert li["short_inputs"] == 0
    rule = prov["block_size_rule"]
    assert prov["block_size"] == rule["needed"] > 2 * 10 and rule["union_bound"] <= prov["delta"]
    assert prov["random_width"] == [prov["block_size"] * 5, prov["block_size"] * 4]
    assert prov["warnings"] == []


def test_kept_second_layer_entries_are_among_the_first_n_of_their_sign_unless_retried():
    t = pensia.construct(small_target(), per_weight_eps=1e-4, samples=4, seed=0, strict=False)
    w = t.random_weights()
    n1, n2 = block_parameter_names(t.spec)[0]
    H, n = t.provenance["block_size"], t.provenance["samples_per_weight"]
    retried = {tuple(i) for i in t.provenance["layers"][0]["wider_pool"]["indices"]}
    assert retried and t.provenance["layers"][0]["wider_pool"]["instances"] == len(retried)
    m1, k2 = w[n1].numpy(), t.masks[n2].numpy()
    beyond_first_n = 0
    for j in range(m1.shape[1]):
        u = m1[j * H:(j + 1) * H, j]
        for s, sign in enumerate((u > 0, u < 0)):
            allowed = np.zeros(H, dtype=bool)
            allowed[np.nonzero(sign)[0][:n]] = True
            for k in range(k2.shape[0]):
                kept = k2[k, j * H:(j + 1) * H] & sign
                if (s, k, j) in retried:
                    beyond_first_n += int((kept & ~allowed).any())
                else:
                    assert not (kept & ~allowed).any()
    assert beyond_first_n > 0  # some retried instance found its subset beyond the first n


def test_too_small_block_size_is_infeasible_naming_block_and_size_needed():
    with pytest.raises(InfeasibleError, match=r"block 1 .*fewer than n = 10.*block_size \d+ makes"):
        pensia.construct(small_target(), per_weight_eps=0.05, samples=10, block_size=10, seed=0)


def test_short_blocks_are_recorded_when_not_strict():
    t = pensia.construct(small_target(), per_weight_eps=0.05, samples=10, block_size=12, seed=0, strict=False)
    assert t.provenance["warnings"] and "fewer than n = 10" in t.provenance["warnings"][0]
    first = t.provenance["layers"][0]
    assert first["short_inputs"] > 0 and first["candidates_per_instance"]["min"] < 10


def test_block_size_below_samples_is_an_input_error():
    with pytest.raises(InputError, match="block_size must be an integer >= samples"):
        pensia.construct(small_target(), per_weight_eps=0.05, samples=10, block_size=5)


def test_nonneg_input_needs_a_smaller_block():
    a = pensia.construct(small_target(), per_weight_eps=0.05, samples=10, seed=0, strict=False)
    b = pensia.construct(small_target(), per_weight_eps=0.05, samples=10, seed=0, strict=False, nonneg_input=True)
    assert b.provenance["block_size"] <= a.provenance["block_size"]
    assert b.provenance["layers"][0]["instances"] == a.provenance["layers"][0]["instances"] // 2


@pytest.mark.parametrize("kwargs", [
    dict(per_weight_eps=0.05, samples=8, seed=2, solver="exact", objective="sparsest"),
    dict(per_weight_eps=0.05, samples=10, seed=0, nonneg_input=True),
])
def test_the_wider_pool_recovers_weights_the_first_n_candidates_miss(kwargs):
    first = pensia.construct(small_target(), strict=False, wider_pool=False, **kwargs)
    wide = pensia.construct(small_target(), strict=False, **kwargs)
    assert first.provenance["weights_above_eps"] > 0 and first.provenance["wider_pool"]["instances"] == 0
    assert wide.provenance["weights_above_eps"] == 0 and wide.provenance["max_error"] <= kwargs["per_weight_eps"]
    pool = wide.provenance["wider_pool"]
    missed_first = sum(li["misses"]["count"] for li in first.provenance["layers"])
    assert pool["instances"] == pool["recovered"] == missed_first
    for a, b in zip(first.provenance["layers"], wide.provenance["layers"]):
        listed = {(m["sign"] == "-", m["row"], m["col"]) for m in a["misses"]["listed"]}
        assert {(bool(i[0]), i[1], i[2]) for i in b["wider_pool"]["indices"]} == listed
    regen = WeightDistribution.uniform().generate(wide.spec, wide.seed)
    for name, p in wide.to_module().state_dict().items():  # still only pruning: kept weights are the random ones
        m = wide.masks[name]
        assert torch.equal(p[m], regen[name][m]) and not p[~m].any()


def test_misses_are_warnings_in_the_provenance_when_not_strict():
    t = pensia.construct(small_target(), per_weight_eps=1e-4, samples=4, seed=0, strict=False)
    above = t.provenance["weights_above_eps"]
    assert above > 0
    (warning,) = t.provenance["warnings"]
    assert warning.startswith(f"{above} target weights miss per-weight eps 0.0001")
    assert "lie within reach but no subset within eps was found" in warning
    assert t.provenance["miss_reasons"] == {"not_found": sum(li["misses"]["count"] for li in t.provenance["layers"])}


def test_a_weight_out_of_the_products_reach_says_more_samples_cannot_help():
    law = WeightDistribution.uniform(-0.1, 0.1)  # products <= 0.01: a block's sums cannot reach 0.3
    with pytest.raises(InfeasibleError) as info:
        pensia.construct(small_target(), per_weight_eps=0.01, samples=10, seed=0, distribution=law)
    msg = str(info.value)
    assert "outside the range of sums the random products can reach" in msg
    assert "more samples per weight from these blocks cannot help" in msg and "raise samples" not in msg
    assert "weight law scaled by >=" in msg and "\n" not in msg


@pytest.mark.parametrize("samples, theory_n, asks", [(21, 21, False), (30, 21, False), (10, 21, True)])
def test_the_miss_advice_never_asks_for_the_samples_already_used(samples, theory_n, asks):
    msg = pensia.miss_message(3, {"not_found": 3}, [], samples=samples, block_size=79, per_weight_eps=0.01,
                              max_error=0.097, theory_n=theory_n, wider_pool=True)
    assert ("the theorem asks for n = 21" in msg) is asks
    assert (f"raise samples above {samples}" in msg) is not asks
