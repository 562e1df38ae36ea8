"""A 2L construction in slices: K slices merged are the unsharded ticket bit for bit; resume; refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from strongticket.construct import build, construction, engine, shard
from strongticket.errors import InputError
from strongticket.ticket import Ticket

from .test_cnn2l import _ref_init, _small_cnn
from .test_pensia import small_target

CASES = {
    "pensia": (lambda: small_target(bias=True, scale=0.3), dict(per_weight_eps=0.02, samples=12, seed=1, strict=False)),
    "malach": (lambda: small_target(), dict(per_weight_eps=0.02, samples=10, seed=3, strict=False)),
    "cnn2l": (lambda: _ref_init(_small_cnn(bias=True), 0),
              dict(per_weight_eps=0.002, samples=10, input_shape=(1, 8, 8), seed=3, strict=False)),
}


@pytest.fixture
def one_row_units(monkeypatch):
    """Units of one second-layer row each, so that every layer is split across units and slices."""
    monkeypatch.setattr(engine, "UNIT_ELEMENTS", 1)


def without_seconds(x):
    """Provenance without its timings (the one thing a merged ticket may differ in)."""
    if isinstance(x, dict):
        return {k: without_seconds(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [without_seconds(v) for v in x]
    return x


def assert_same_ticket(a: Ticket, b: Ticket) -> None:
    assert a.spec == b.spec and a.distribution == b.distribution and a.seed == b.seed
    assert list(a.masks) == list(b.masks)
    for name in a.masks:
        assert torch.equal(a.masks[name], b.masks[name]), name
    assert sorted(a.arrays) == sorted(b.arrays)
    for name in a.arrays:
        assert a.arrays[name].dtype == b.arrays[name].dtype and torch.equal(a.arrays[name], b.arrays[name]), name
    assert without_seconds(a.provenance) == without_seconds(b.provenance)


def run_slices(method: str, tmp_path: Path, k: int = 3, **changes) -> list[Path]:
    make, options = CASES[method]
    dirs = []
    for i in range(1, k + 1):
        d = tmp_path / f"slice{i}"
        shard.run_shard(method, make(), {**options, **changes}, i, k, d)
        dirs.append(d)
    return dirs


@pytest.mark.parametrize("method", ["pensia", "cnn2l", "malach"])
def test_three_slices_merge_into_the_unsharded_ticket_bit_for_bit(method, tmp_path, one_row_units):
    make, options = CASES[method]
    whole = build(method, make(), **options)
    units = construction(method).prepare(make(), **options).units
    assert len(units) >= 7 and len(units) > len({u.layer for u in units})  # slices cut through layers
    dirs = run_slices(method, tmp_path)
    merged = shard.merge([dirs[2], dirs[0], dirs[1]], tmp_path / "ticket")
    assert_same_ticket(merged, whole)
    assert_same_ticket(Ticket.load(tmp_path / "ticket"), whole)
    assert whole.provenance["layers"][0]["wider_pool"]["instances"] > 0  # the retry's records merge too


def test_a_rerun_of_a_finished_slice_skips_and_a_killed_one_runs_only_what_is_missing(tmp_path, one_row_units):
    make, options = CASES["pensia"]
    d = tmp_path / "slice"
    first = shard.run_shard("pensia", make(), options, 1, 2, d)
    files = sorted((d / shard.UNITS_DIR).iterdir())
    assert first.ran == first.units == len(files) > 1 and first.skipped == 0
    before = {f.name: f.read_bytes() for f in files}
    again = shard.run_shard("pensia", make(), options, 1, 2, d)
    assert (again.ran, again.skipped) == (0, first.units)
    assert {f.name: f.read_bytes() for f in sorted((d / shard.UNITS_DIR).iterdir())} == before
    files[1].unlink()  # as if the slice had been killed before its second unit was written
    resumed = shard.run_shard("pensia", make(), options, 1, 2, d)
    assert (resumed.ran, resumed.skipped) == (1, first.units - 1)
    again, was = load_file(str(files[1])), _arrays(before[files[1].name])
    assert again.keys() == was.keys() and all(np.array_equal(again[k], was[k]) for k in was)  # timing aside


def _arrays(data: bytes) -> dict:
    from safetensors.numpy import load

    return load(data)


def test_slices_of_another_configuration_are_refused(tmp_path):
    make, options = CASES["pensia"]
    a = tmp_path / "a"
    b = tmp_path / "b"
    shard.run_shard("pensia", make(), options, 1, 2, a)
    shard.run_shard("pensia", make(), {**options, "seed": 2}, 2, 2, b)
    with pytest.raises(InputError, match=r"another construction .*options seed \(2 vs 1\)"):
        shard.merge([a, b], tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_missing_duplicated_or_unfinished_slice_is_refused_with_nothing_written(tmp_path, one_row_units):
    dirs = run_slices("pensia", tmp_path)
    out = tmp_path / "t"
    with pytest.raises(InputError, match=r"slice\(s\) 2/3 missing"):
        shard.merge([dirs[0], dirs[2]], out)
    with pytest.raises(InputError, match=r"slice 1/3 is given twice"):
        shard.merge([dirs[0], dirs[0], dirs[1], dirs[2]], out)
    other = tmp_path / "other"
    shard.run_shard("pensia", CASES["pensia"][0](), CASES["pensia"][1], 1, 2, other)
    with pytest.raises(InputError, match=r"is slice 1/2 but .* is 1/3"):
        shard.merge([dirs[0], other], out)
    next((dirs[1] / shard.UNITS_DIR).iterdir()).unlink()
    with pytest.raises(InputError, match=r"slice 2/3\) is unfinished: 1 of its"):
        shard.merge(dirs, out)
    with pytest.raises(InputError, match="not a construction slice directory"):
        shard.merge([tmp_path], out)
    assert not out.exists()


@pytest.mark.parametrize("index, count", [(0, 3), (4, 3), (1, 0), (True, 2), ("1", 2)])
def test_a_slice_out_of_range_is_refused_before_anything_is_written(index, count, tmp_path):
    make, options = CASES["pensia"]
    with pytest.raises(InputError, match=r"--shard I/K needs integers 1 <= I <= K"):
        shard.run_shard("pensia", make(), options, index, count, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_constructions_off_the_2l_engine_do_not_run_in_slices(tmp_path):
    with pytest.raises(InputError, match=r"--shard does not apply to --method lplus1.*pensia, malach, cnn2l"):
        shard.run_shard("lplus1", small_target(), {"eps": 0.1}, 1, 2, tmp_path / "s")


def test_another_slice_in_out_is_refused_then_replaced_with_overwrite_and_foreign_directories_never(tmp_path):
    make, options = CASES["pensia"]
    d = tmp_path / "s"
    shard.run_shard("pensia", make(), options, 1, 2, d)
    with pytest.raises(InputError, match=r"holds slice 1/2 of another construction or slice.*--overwrite"):
        shard.run_shard("pensia", make(), options, 2, 2, d)
    report = shard.run_shard("pensia", make(), options, 2, 2, d, overwrite=True)
    assert report.slice == (2, 2) and report.ran == report.units
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        shard.run_shard("pensia", make(), options, 1, 2, thesis, overwrite=True)
    assert [p.name for p in thesis.iterdir()] == ["thesis.txt"]
