"""Ticket: only prunes, counts match masks, save/load round trip, damaged directories are named."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import prune  # noqa: F401  (the convention exported to)

from strongticket.errors import InputError, TicketFormatError
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import Linear, NetSpec
from strongticket.ticket import MASKS_FILE, TICKET_JSON, WEIGHTS_FILE, Ticket

SPEC = NetSpec((Linear(6, 8, activation="relu"), Linear(8, 3, bias=True)))


def _ticket(seed: int = 4) -> Ticket:
    gen = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(s, generator=gen) < 0.4 for n, s in SPEC.parameter_shapes().items()}
    return Ticket(SPEC, WeightDistribution.uniform(), seed, masks, {"method": "test", "eps": 0.1},
                  {"errors.block0.pos": torch.rand(3, 2, dtype=torch.float64, generator=gen)})


def test_surviving_weights_are_the_random_weights_bit_for_bit():
    t = _ticket()
    regen = WeightDistribution.uniform().generate(SPEC, 4)
    module = t.to_module()
    for name, p in module.state_dict().items():
        m = t.masks[name]
        assert torch.equal(p[m], regen[name][m])
        assert torch.equal(p[~m], torch.zeros_like(p[~m]))


def test_density_counts_match_the_masks():
    t = _ticket()
    rows = {r["name"]: r for r in t.density_table()}
    for name, m in t.masks.items():
        assert rows[name]["kept"] == int(m.sum()) and rows[name]["params"] == m.numel()
    assert rows["total"]["kept"] == t.num_kept == sum(int(m.sum()) for m in t.masks.values())
    assert t.num_params == SPEC.num_params
    assert abs(t.density + t.sparsity - 1) < 1e-12


def test_save_load_round_trip_is_identical(tmp_path):
    t = _ticket()
    t.save(tmp_path / "t", include_weights=True)
    back = Ticket.load(tmp_path / "t")
    assert back.equals(t)
    assert torch.equal(back.to_module().layers[0].weight, t.to_module().layers[0].weight)


def test_torch_prune_and_state_dict_exports_round_trip():
    t = _ticket()
    pruned = t.to_torch_prune()
    state = pruned.state_dict()
    assert "layers.0.weight_orig" in state and "layers.0.weight_mask" in state
    assert Ticket.from_state_dict(state, SPEC, t.distribution, t.seed).masks.keys() == t.masks.keys()
    assert all(torch.equal(Ticket.from_state_dict(state, SPEC, t.distribution, t.seed).masks[k], t.masks[k])
               for k in t.masks)
    plain = t.state_dict()
    again = Ticket.from_state_dict(plain, SPEC, t.distribution, t.seed)
    assert all(torch.equal(again.masks[k], t.masks[k] & (plain[k] != 0)) for k in t.masks)
    plain["layers.0.weight"] = plain["layers.0.weight"] + t.masks["layers.0.weight"] * 0.5
    with pytest.raises(InputError, match="not a subnetwork"):
        Ticket.from_state_dict(plain, SPEC, t.distribution, t.seed)


def test_masks_must_fit_the_spec():
    with pytest.raises(InputError, match="missing"):
        Ticket(SPEC, WeightDistribution.uniform(), 0, {})


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / MASKS_FILE).write_bytes((d / MASKS_FILE).read_bytes()[:-3] + b"abc"), "sha256"),
    (lambda d: (d / MASKS_FILE).unlink(), "missing"),
    (lambda d: (d / TICKET_JSON).unlink(), "ticket.json is missing"),
    (lambda d: (d / TICKET_JSON).write_text("{not json"), "not valid JSON"),
    (lambda d: _edit(d, format_version=2), "format version 2"),
    (lambda d: _edit(d, format="something-else"), "not a strongticket ticket"),
    (lambda d: _edit(d, seed=5), "differ from the weights regenerated"),
])
def test_damaged_directories_say_what_is_wrong(tmp_path, damage, message):
    d = _ticket().save(tmp_path / "t", include_weights=True)
    damage(d)
    with pytest.raises(TicketFormatError, match=message) as info:
        Ticket.load(d)
    assert "\n" not in str(info.value)


def test_loading_a_missing_directory_says_so(tmp_path):
    with pytest.raises(TicketFormatError, match="does not exist"):
        Ticket.load(tmp_path / "nope")


def test_save_refuses_to_overwrite_and_leaves_nothing_half_written(tmp_path):
    t = _ticket()
    t.save(tmp_path / "t")
    with pytest.raises(InputError, match="already exists"):
        t.save(tmp_path / "t", include_weights=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    assert WEIGHTS_FILE not in [p.name for p in (tmp_path / "t").iterdir()]


def _edit(d, **changes):
    meta = json.loads((d / TICKET_JSON).read_text())
    meta.update(changes)
    (d / TICKET_JSON).write_text(json.dumps(meta))
