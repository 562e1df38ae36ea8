"""Ticket: only prunes, counts match masks, save/load round trip, damaged directories are named."""

from __future__ import annotations

import dataclasses
import json
import typing

import jsonschema
import pytest
import torch
from torch import nn
from torch.nn.utils import prune  # noqa: F401  (the convention exported to)

from strongticket.errors import InputError, TicketFormatError
from strongticket.nets.distributions import LAWS, WeightDistribution
from strongticket.nets.spec import Conv2d, Flatten, Layer, Linear, NetSpec, Pool
from strongticket.schemas import load_schema
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


def _edit_with(d, change):
    meta = json.loads((d / TICKET_JSON).read_text())
    change(meta)
    (d / TICKET_JSON).write_text(json.dumps(meta))


# ----- ticket.json is strict: its JSON Schema ---------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(foo=1), "unknown key 'foo'"),
    (lambda m: m.pop("seed"), "missing key 'seed'"),
    (lambda m: m.update(seed="x"), "'seed' must be an integer, got 'x'"),
    (lambda m: m.update(seed=True), "'seed' must be an integer, got True"),
    (lambda m: m.update(seed=-1), "'seed' must be >= 0, got -1"),
    (lambda m: m.update(seed=1.5), "'seed' must be an integer, got 1.5"),
    (lambda m: m.pop("spec"), "missing key 'spec'"),
    (lambda m: m.update(provenance=[]), "'provenance' must be an object, got []"),
    (lambda m: m["spec"].update(depth=2), "unknown key 'spec.depth'"),
    (lambda m: m["spec"].update(input_shape="a"), "'spec.input_shape' must be an array or null, got 'a'"),
    (lambda m: m["spec"]["layers"][0].update(dropout=0.5), "unknown key 'spec.layers[0].dropout'"),
    (lambda m: m["spec"]["layers"][1].pop("out_features"), "missing key 'spec.layers[1].out_features'"),
    (lambda m: m["spec"]["layers"][0].update(in_features=0), "'spec.layers[0].in_features' must be >= 1, got 0"),
    (lambda m: m["spec"]["layers"][0].update(type="lstm"), "'spec.layers[0].type' must be one of 'linear', "),
    (lambda m: m["spec"].update(layers=[]), "'spec.layers' must have at least 1 item"),
    (lambda m: m["distribution"].update(mean=0.0), "unknown key 'distribution.mean'"),
    (lambda m: m["distribution"]["params"].update(gain=1.0), "unknown key 'distribution.params.gain'"),
    (lambda m: m["distribution"].update(name="cauchy"), "'distribution.name' must be one of 'uniform', "),
    (lambda m: m["distribution"].update(scale=0), "'distribution.scale' must be > 0, got 0"),
    (lambda m: m["files"].update({"extra.bin": "0" * 64}), "unknown key 'files.extra.bin'"),
    (lambda m: m["files"].pop(MASKS_FILE), f"missing key 'files.{MASKS_FILE}'"),
    (lambda m: m["files"].update({MASKS_FILE: "abc"}), "'files.masks.safetensors' must be a sha256 digest"),
])
def test_ticket_json_that_breaks_the_schema_is_one_line_naming_the_key(tmp_path, change, message):
    d = _ticket().save(tmp_path / "t")
    _edit_with(d, change)
    with pytest.raises(TicketFormatError) as info:
        Ticket.load(d)
    text = str(info.value)
    assert text.startswith(f"ticket.json in {str(d)!r}: ") and message in text, text
    assert "\n" not in text


def test_provenance_stays_open(tmp_path):
    d = _ticket().save(tmp_path / "t")
    _edit_with(d, lambda m: m["provenance"].update(anything={"nested": [1, "two"]}))
    assert Ticket.load(d).provenance["anything"] == {"nested": [1, "two"]}


def _conv_ticket() -> Ticket:
    spec = NetSpec((Conv2d(1, 2, 3, padding=1, bias=True, activation="relu"), Pool("avg"), Flatten(),
                    Linear(8, 3)), input_shape=(1, 4, 4))
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in spec.parameter_shapes().items()}
    return Ticket(spec, WeightDistribution("kaiming_normal", scale=0.5), 2, masks, {"method": "hand-made"})


def _small_target(bias: bool) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(5, 4, bias=bias), nn.ReLU(), nn.Linear(4, 3, bias=bias))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.5 * (2 * torch.rand(p.shape, generator=gen) - 1))
    return m.eval()


def _constructed(name: str) -> Ticket:
    from strongticket.construct import malach, pensia

    if name == "pensia":
        return pensia.construct(_small_target(False), per_weight_eps=0.05, samples=8, seed=1, solver="exact",
                                strict=False)
    if name == "pensia-bias":
        return pensia.construct(_small_target(True), per_weight_eps=0.05, samples=8, seed=1, solver="exact",
                                strict=False)
    if name == "malach":
        return malach.construct(_small_target(False), per_weight_eps=0.05, samples=8, seed=1, strict=False)
    return {"hand-made": _ticket, "conv": _conv_ticket}[name]()


@pytest.mark.parametrize("name", ["pensia", "pensia-bias", "malach", "hand-made", "conv"])
@pytest.mark.parametrize("include_weights", [False, True])
def test_every_saved_ticket_validates_against_the_published_schema(tmp_path, name, include_weights):
    d = _constructed(name).save(tmp_path / "t", include_weights=include_weights)
    meta = json.loads((d / TICKET_JSON).read_text())
    jsonschema.validate(meta, load_schema("ticket"), cls=jsonschema.Draft202012Validator)
    assert Ticket.load(d).seed == meta["seed"]


def test_the_schema_describes_every_layer_field_and_law_parameter():
    """The schema is written by hand: it must list exactly the fields the code writes, no more, no fewer."""
    schema = load_schema("ticket")
    jsonschema.Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    layers = typing.get_args(Layer)
    assert set(defs["layer"]["properties"]["type"]["enum"]) == {layer.kind for layer in layers}
    for layer in layers:
        fields = {f.name for f in dataclasses.fields(layer) if f.init}
        assert set(defs[layer.kind]["properties"]) == fields | {"type"}, layer.kind
    assert set(defs["distribution"]["properties"]["name"]["enum"]) == set(LAWS)
    for rule in defs["distribution"]["allOf"]:
        law = rule["if"]["properties"]["name"]["const"]
        assert set(rule["then"]["properties"]["params"]["properties"]) == set(LAWS[law]), law


# ----- per-tensor weight scales (tensor_scales) ------------------------------------------------------------
def _scaled_ticket() -> Ticket:
    t = _ticket()
    dist = WeightDistribution.uniform().with_tensor_scales({"layers.0.weight": 0.05, "layers.1.weight": 40.0})
    return Ticket(SPEC, dist, t.seed, t.masks, t.provenance, t.arrays)


def test_tensor_scales_multiply_the_draw_after_it_and_leave_other_tensors_bit_identical():
    plain, scaled = WeightDistribution.uniform(), _scaled_ticket().distribution
    a, b = plain.generate(SPEC, 4), scaled.generate(SPEC, 4)
    assert torch.equal(a["layers.1.bias"], b["layers.1.bias"])  # no factor: the same bits as before
    # float32(float64 draw * factor): one rounding of the exact float64 product, never a second draw
    raw = WeightDistribution.uniform(scale=0.05).generate(SPEC, 4)["layers.0.weight"]
    assert torch.equal(b["layers.0.weight"], raw)
    assert float(b["layers.1.weight"].abs().max()) > 1.0 >= float(a["layers.1.weight"].abs().max())


def test_ticket_with_tensor_scales_round_trips_and_regenerates_bit_for_bit(tmp_path):
    t = _scaled_ticket()
    d = t.save(tmp_path / "t", include_weights=True)  # load re-checks the stored weights against regeneration
    meta = json.loads((d / TICKET_JSON).read_text())
    assert meta["distribution"]["tensor_scales"] == {"layers.0.weight": 0.05, "layers.1.weight": 40.0}
    jsonschema.validate(meta, load_schema("ticket"), cls=jsonschema.Draft202012Validator)
    back = Ticket.load(d)
    assert back.equals(t) and back.distribution == t.distribution
    w, v = t.random_weights(), back.random_weights()
    assert all(torch.equal(w[n], v[n]) for n in w)
    assert torch.equal(back.to_module().layers[1].weight, t.to_module().layers[1].weight)


def test_ticket_json_without_tensor_scales_loads_with_every_factor_one(tmp_path):
    d = _ticket().save(tmp_path / "t")
    meta = json.loads((d / TICKET_JSON).read_text())
    assert "tensor_scales" not in meta["distribution"]  # written exactly as before tensor scales existed
    back = Ticket.load(d)
    assert back.distribution.tensor_scales == ()
    assert all(back.distribution.tensor_scale(n) == 1.0 for n in SPEC.parameter_shapes())
    assert torch.equal(back.random_weights()["layers.0.weight"],
                       WeightDistribution.uniform().generate(SPEC, 4)["layers.0.weight"])


@pytest.mark.parametrize("change, message", [
    (lambda m: m["distribution"].update(tensor_scales={"layers.0.weight": 0}),
     "'distribution.tensor_scales.layers.0.weight' must be > 0, got 0"),
    (lambda m: m["distribution"].update(tensor_scales={"layers.0.weight": "x"}),
     "'distribution.tensor_scales.layers.0.weight' must be a number, got 'x'"),
    (lambda m: m["distribution"].update(tensor_scales=[2.0]), "'distribution.tensor_scales' must be an object"),
    (lambda m: m["distribution"].update(tensor_scales={"layers.9.weight": 2.0}),
     "'distribution.tensor_scales' names ['layers.9.weight'], which are not parameters of the spec"),
])
def test_bad_tensor_scales_in_ticket_json_are_one_line_naming_the_key(tmp_path, change, message):
    d = _scaled_ticket().save(tmp_path / "t")
    _edit_with(d, change)
    with pytest.raises(TicketFormatError) as info:
        Ticket.load(d)
    text = str(info.value)
    assert message in text and "\n" not in text, text


@pytest.mark.parametrize("scales, message", [
    ({"layers.9.weight": 2.0}, "not parameters of the spec"),
    ({"layers.0.weight": -1.0}, "tensor_scales['layers.0.weight'] must be a finite number > 0, got -1.0"),
    ({"layers.0.weight": float("nan")}, "must be a finite number > 0"),
])
def test_bad_tensor_scales_are_refused_before_a_ticket_exists(scales, message):
    t = _ticket()
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        Ticket(SPEC, WeightDistribution("uniform", (), 1.0, tuple(scales.items())), 4, t.masks)
