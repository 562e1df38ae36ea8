"""The one 2L engine: tickets bit-identical to those built before it existed; a new layer kind is one job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from strongticket.construct import cnn2l, engine, malach, pensia
from strongticket.construct.blocks import read_fc_target, random_spec
from strongticket.nets.distributions import WeightDistribution

from .test_cnn2l import _ref_init
from .test_pensia import small_target

#: Masks and per-weight errors of three tickets built by the Pensia/Malach code before the engine existed.
REFERENCE = Path(__file__).parent / "data" / "engine_reference.npz"

CASES = {
    "p_bias": lambda: pensia.construct(small_target(bias=True, scale=0.3), per_weight_eps=0.02, samples=12, seed=1,
                                       strict=False),
    "p_sparse": lambda: pensia.construct(small_target(), per_weight_eps=0.05, samples=8, seed=2, solver="exact",
                                         objective="sparsest", strict=False),
    "m": lambda: malach.construct(small_target(), per_weight_eps=0.02, samples=10, seed=3, strict=False),
}


#: Per-layer records (timings dropped) of those tickets and of a cnn2l one, written when every layer was solved
#: as one block (before the engine worked in units).
RECORDS = Path(__file__).parent / "data" / "engine_records_reference.json"
RECORD_CASES = {"p": CASES["p_bias"], "ps": CASES["p_sparse"], "m": CASES["m"],
                "c2": lambda: cnn2l.construct(
                    _ref_init(torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, stride=2, padding=1), torch.nn.ReLU(),
                                                  torch.nn.Conv2d(3, 2, 2), torch.nn.MaxPool2d(2)), 5),
                    per_weight_eps=0.002, samples=8, input_shape=(1, 9, 9), seed=2, strict=False)}


@pytest.mark.parametrize("case", sorted(RECORD_CASES))
def test_layer_records_from_one_row_units_equal_those_of_whole_layers(case, monkeypatch):
    """Statuses, listed retries and misses (in their order), counts and the mean subset size merge exactly."""
    import json

    from .test_shard import without_seconds

    monkeypatch.setattr(engine, "UNIT_ELEMENTS", 1)  # every row of every layer its own unit
    ticket = RECORD_CASES[case]()
    assert without_seconds(ticket.provenance["layers"]) == json.loads(RECORDS.read_text())[case]


@pytest.mark.parametrize("case", sorted(CASES))
def test_tickets_are_bit_identical_to_those_built_before_the_engine(case):
    ref = np.load(REFERENCE)
    ticket = CASES[case]()
    names = [k.split("/", 1)[1] for k in ref.files if k.startswith(case + "/")]
    mask_names = [n for n in names if not n.startswith("errors.")]
    assert sorted(mask_names) == sorted(ticket.masks)
    for n in names:
        got = ticket.masks[n] if n in ticket.masks else ticket.arrays[n]
        assert np.array_equal(got.numpy(), ref[f"{case}/{n}"]), n


def test_a_layer_kind_is_one_job_a_transposed_second_layer_gives_the_transposed_mask():
    """A toy kind storing the second layer transposed: only its views change, the choice is the same."""
    fc = read_fc_target(small_target())
    spec = random_spec(fc, 30)
    law = WeightDistribution.uniform()
    chooser = pensia.subset_sum_chooser("exact", "min_error", 0.02, None)
    kw = dict(distribution=law, seed=4, block_size=30, samples=10, per_weight_eps=0.02, strict=False,
              wider_pool=True, short_fix=lambda: "")
    jobs = engine.linear_jobs(fc, spec, [True, False])
    plain = engine.run(jobs, chooser, **kw)

    def transposed(job):
        # the random second layer drawn as (d_in * H, rows), e.g. a layer stored input-major
        shape = tuple(reversed(job.shapes[1]))
        return engine.LayerJob(names=(job.names[0], job.names[1]), shapes=(job.shapes[0], shape),
                               matrix=job.matrix, negative_side=job.negative_side,
                               second_as_matrix=lambda v: np.ascontiguousarray(v.T),
                               matrix_as_second=lambda m: np.ascontiguousarray(m.T), fan_in=job.fan_in)

    # the same random values in the other layout
    moved = engine.run([transposed(j) for j in jobs], chooser,
                       **{**kw, "distribution": _TransposedLaw(law, {j.names[1] for j in jobs})})
    assert plain.layers[0]["wider_pool"]["instances"] + plain.layers[1]["wider_pool"]["instances"] > 0
    for n1, n2 in (j.names for j in jobs):
        assert torch.equal(moved.masks[n1], plain.masks[n1])
        assert torch.equal(moved.masks[n2], plain.masks[n2].T)
    for k in plain.arrays:
        assert np.array_equal(plain.arrays[k], moved.arrays[k])


class _TransposedLaw:
    """Wraps a law so that the named parameters come out transposed (same values, other layout)."""

    def __init__(self, law: WeightDistribution, names: set[str]):
        self.law, self.names = law, names

    def tensor(self, name, shape, seed, *, fan_in=None):
        if name in self.names:
            return self.law.tensor(name, tuple(reversed(shape)), seed, fan_in=fan_in).T.contiguous()
        return self.law.tensor(name, shape, seed, fan_in=fan_in)

    def iter_rows(self, *args, **kwargs):
        return self.law.iter_rows(*args, **kwargs)


def test_the_conv2d_kind_through_the_engine_equals_the_conv_pair_assembly():
    """A Conv2d job run by the engine gives the masks and kernel-shaped errors of conv.assemble_pair."""
    from strongticket.construct import conv
    from strongticket.construct.blocks import first_layer_diagonal

    c_out, c_in, k, H, n, seed = 3, 2, 3, 12, 5, 7
    kernel = np.random.default_rng(0).uniform(-0.3, 0.3, (c_out, c_in, k, k))
    law = WeightDistribution.uniform()
    names = ("layers.0.weight", "layers.1.weight")
    shapes = ((H * c_in, c_in, 1, 1), (c_out, H * c_in, k, k))
    chooser = pensia.subset_sum_chooser("exact", "min_error", 0.02, None)
    out = engine.run([engine.conv_job(names, shapes, kernel, negative_side=True, fan_in=H * c_in * k * k)], chooser,
                     distribution=law, seed=seed, block_size=H, samples=n, per_weight_eps=0.02, strict=False,
                     wider_pool=True, short_fix=lambda: "")
    u = first_layer_diagonal(law, names[0], (H * c_in, c_in), seed, H)
    v = law.tensor(names[1], shapes[1], seed, fan_in=H * c_in * k * k)
    pair = conv.assemble_pair(kernel, u, v, chooser, samples=n, negative_side=True, eps=0.02)
    assert torch.equal(out.masks[names[0]], pair.mask1) and torch.equal(out.masks[names[1]], pair.mask2)
    assert out.masks[names[1]].shape == shapes[1]
    assert np.array_equal(out.arrays["errors.block0.pos"], pair.errors_pos)
    assert np.array_equal(out.arrays["errors.block0.neg"], pair.errors_neg)
    assert out.layers[0]["instances"] == 2 * kernel.size


class _SmallChunks:
    """A law that draws in chunks of a few rows (same values: chunks concatenate to the whole tensor)."""

    def __init__(self, law: WeightDistribution):
        self.law = law

    def tensor(self, name, shape, seed, *, fan_in=None):
        return self.law.tensor(name, shape, seed, fan_in=fan_in)

    def iter_rows(self, name, shape, seed, *, fan_in=None, chunk_elements=None):
        return self.law.iter_rows(name, shape, seed, fan_in=fan_in, chunk_elements=7)


@pytest.mark.parametrize("kind", ["linear", "conv", "flatten"])
def test_second_layer_filled_chunk_by_chunk_gives_the_same_masks(kind):
    """Row-wise jobs draw their second layer in chunks straight into the matrix view: same values, same ticket."""
    rng = np.random.default_rng(5)
    H, n = 12, 5
    names = ("layers.0.weight", "layers.1.weight")
    if kind == "linear":
        w = rng.uniform(-0.4, 0.4, (3, 4))
        job = engine.linear_job(names, ((H * 4, 4), (3, H * 4)), w, negative_side=True)
    elif kind == "conv":
        w = rng.uniform(-0.4, 0.4, (3, 2, 3, 3))
        job = engine.conv_job(names, ((H * 2, 2, 1, 1), (3, H * 2, 3, 3)), w, negative_side=True, fan_in=H * 18)
    else:
        w = rng.uniform(-0.4, 0.4, (3, 2 * 6))
        job = engine.flatten_linear_job(names, ((H * 2, 2, 1, 1), (3, H * 2 * 6)), w, 2, negative_side=True)
    assert job.rowwise
    law = WeightDistribution.uniform()
    kw = dict(seed=1, block_size=H, samples=n, per_weight_eps=0.02, strict=False, wider_pool=True,
              short_fix=lambda: "")
    chooser = pensia.subset_sum_chooser("exact", "min_error", 0.02, None)
    whole = engine.run([job], chooser, distribution=law, **kw)
    chunked = engine.run([job], chooser, distribution=_SmallChunks(law), **kw)
    assert len(list(_SmallChunks(law).iter_rows(names[1], job.shapes[1], 1))) == job.shapes[1][0]  # a row each
    for name in names:
        assert torch.equal(whole.masks[name], chunked.masks[name])
    for key in whole.arrays:
        assert np.array_equal(whole.arrays[key], chunked.arrays[key])


@pytest.mark.parametrize("method", ["malach", "cnn2l"])
def test_the_ticket_does_not_depend_on_the_unit_size(method, monkeypatch):
    """Layers solved in units of one row merge into the ticket of whole-layer units: masks, errors and every
    record (statuses, listed retries and misses in their order, mean subset size), timings aside."""
    from strongticket.construct import build

    from .test_shard import CASES, assert_same_ticket

    make, options = CASES[method]
    whole = build(method, make(), **options)
    assert len(engine.plan(whole_jobs := _jobs(method))) == len(whole_jobs)  # one unit per layer by default
    monkeypatch.setattr(engine, "UNIT_ELEMENTS", 1)
    assert len(engine.plan(whole_jobs)) > 2 * len(whole_jobs)
    rows = build(method, make(), **options)
    layer = whole.provenance["layers"][0]
    if method == "malach":  # retries of both signs, several misses: their merged order is checked
        assert {i[0] for i in layer["wider_pool"]["indices"]} == {0, 1} and layer["misses"]["count"] > 1
    else:
        assert layer["wider_pool"]["instances"] > 0 and len(whole.provenance["misses"]) > 1
    assert_same_ticket(rows, whole)


def _jobs(method):
    from strongticket.construct import construction

    from .test_shard import CASES

    make, options = CASES[method]
    return construction(method).prepare(make(), **options).jobs


def test_a_layer_solved_in_units_never_holds_its_random_weights_whole(monkeypatch):
    """Peak Python/numpy memory of a layer solved in units of 8 rows (of 512) stays below the layer's own float32 size
    (the masks, 1 byte per weight, and the errors stay; the rows and their float64 candidates come and go)."""
    import tracemalloc

    from strongticket.construct import blocks

    for module in (blocks, engine):  # draw buffers of one row too (their fixed 8 MB would dwarf this layer)
        monkeypatch.setattr(module, "DRAW_ELEMENTS", 1280)
    rng = np.random.default_rng(0)
    d_out, d_in, H, n = 512, 32, 40, 10
    names = ("layers.0.weight", "layers.1.weight")
    job = engine.linear_job(names, ((H * d_in, d_in), (d_out, H * d_in)), rng.uniform(-0.3, 0.3, (d_out, d_in)),
                            negative_side=True)
    chooser = pensia.subset_sum_chooser("exact", "min_error", 0.05, None)
    kw = dict(distribution=WeightDistribution.uniform(), seed=0, block_size=H, samples=n, per_weight_eps=0.05,
              strict=False, wider_pool=False, short_fix=lambda: "")
    engine.run([job], chooser, **kw, unit_elements=8 * H * d_in)  # compile and warm up outside the trace
    tracemalloc.start()
    try:
        out = engine.run([job], chooser, **kw, unit_elements=8 * H * d_in)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    layer_bytes = 4 * d_out * H * d_in
    assert out.masks[names[1]].shape == (d_out, H * d_in)
    assert peak < 0.75 * layer_bytes, (peak, layer_bytes)
