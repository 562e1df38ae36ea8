"""Running a comparison: one result per unit, resume after a kill, shards that merge into the unsharded run,
and directories that are never confused or clobbered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongticket.compare import CompareConfig, compare, merge, results_page, write_report
from strongticket.compare.runner import OPTIONAL_FIELDS, RESULT_FIELDS, TIMING_FIELDS, Runner, read_results
from strongticket.compare.table import aggregate, to_markdown
from strongticket.compare.units import parse_shard, plan, shard
from strongticket.errors import InputError

CONFIG = {"name": "tiny", "seeds": [0, 1],
          "train": {"data": {"dataset": "digits", "batch_size": 64, "train_subset": 256},
                    "model": {"model": "fc2", "width": 0.05}, "optim": {"epochs": 1, "lr": 0.05}},
          "construct": [{"method": "pensia", "label": "2L sparsest",
                         "options": {"per_weight_eps": 0.02, "objective": "sparsest"}}],
          "find": [{"method": "magnitude", "densities": [0.5]}]}


@pytest.fixture(scope="module")
def config() -> CompareConfig:
    return CompareConfig.from_dict(CONFIG)


@pytest.fixture(scope="module")
def unsharded(config: CompareConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "all"
    compare(config, out, device="cpu")
    return out


def _deterministic(results: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in results]


def test_every_unit_writes_one_result_with_every_field(config: CompareConfig, unsharded: Path) -> None:
    results = read_results(unsharded)
    assert [r["unit"] for r in results] == sorted(u.id for u in plan(config))
    assert all(set(r) == set(RESULT_FIELDS + OPTIONAL_FIELDS) for r in results)
    built = [r for r in results if r["kind"] == "construct"]
    assert all(r["needs_training"] is False and r["error_measured"] <= r["error_certified"] for r in built)
    # the adversarial search, started from test images, finds at least their error and stays under the bound
    assert all(0 < r["error_adversarial"] <= r["error_certified"] for r in built)
    assert all(r["ticket_params"] < r["network_params"] for r in built)
    for name in ("table.md", "table.csv", "rows.json", "accuracy_vs_params.png", "error_vs_width.png",
                 "time_vs_accuracy.png"):
        assert (unsharded / name).is_file(), name


def test_three_shards_merged_give_the_unsharded_results_bit_for_bit(config: CompareConfig, unsharded: Path,
                                                                      tmp_path: Path) -> None:
    shards = []
    for i in (1, 2, 3):
        compare(config, tmp_path / f"s{i}", shard=(i, 3), device="cpu")
        shards.append(tmp_path / f"s{i}")
    report = merge(config, tmp_path / "merged", shards)
    assert report["done"] == len(plan(config))
    assert _deterministic(read_results(tmp_path / "merged")) == _deterministic(read_results(unsharded))
    ours = to_markdown(aggregate(read_results(tmp_path / "merged")), timing=False)
    assert ours == to_markdown(aggregate(read_results(unsharded)), timing=False)


def test_shards_cover_every_unit_exactly_once(config: CompareConfig) -> None:
    units = plan(config)
    for k in (1, 2, 3, 7):
        got = [u.id for i in range(1, k + 1) for u in shard(units, i, k)]
        assert sorted(got) == sorted(u.id for u in units)


def test_a_kill_loses_only_the_unit_in_flight_and_a_rerun_finishes(config: CompareConfig, unsharded: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = Runner.run_unit

    def dying(self, unit):
        calls.append(unit.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, unit)

    monkeypatch.setattr(Runner, "run_unit", dying)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        compare(config, out, device="cpu")
    first = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
    assert len(first) == 2
    monkeypatch.setattr(Runner, "run_unit", real)
    compare(config, out, device="cpu")
    assert all((out / "results" / n).read_bytes() == b for n, b in first.items())  # finished units not redone
    assert _deterministic(read_results(out)) == _deterministic(read_results(unsharded))


def test_another_configuration_in_the_same_directory_is_refused_then_replaced_with_overwrite(
        config: CompareConfig, tmp_path: Path) -> None:
    out = tmp_path / "run"
    other = CompareConfig.from_dict({**CONFIG, "construct": [], "seeds": [3]})
    compare(other, out, device="cpu")
    with pytest.raises(InputError, match="holds a comparison of another configuration; pass --overwrite"):
        compare(config, out, device="cpu", shard=(1, 4))
    compare(config, out, device="cpu", shard=(4, 4), overwrite=True)
    assert json.loads((out / "compare.json").read_text())["digest"] == config.digest()


def test_a_directory_strongticket_did_not_write_is_never_touched(config: CompareConfig, tmp_path: Path) -> None:
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(InputError, match="did not write"):
            compare(config, tmp_path / "thesis", device="cpu", overwrite=overwrite)
    assert (tmp_path / "thesis" / "thesis.txt").read_text() == "mine"
    assert [p.name for p in (tmp_path / "thesis").iterdir()] == ["thesis.txt"]


def test_shards_of_another_configuration_do_not_merge(config: CompareConfig, unsharded: Path,
                                                      tmp_path: Path) -> None:
    other = CompareConfig.from_dict({**CONFIG, "name": "other"})
    with pytest.raises(InputError, match="holds a comparison of another configuration"):
        merge(other, tmp_path / "m", [unsharded])
    assert not (tmp_path / "m").exists()
    with pytest.raises(InputError, match="is not a comparison directory"):
        merge(config, tmp_path / "m", [tmp_path])


def test_a_merged_unit_that_differs_between_shards_is_refused(config: CompareConfig, unsharded: Path,
                                                              tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(unsharded, copy, ignore=shutil.ignore_patterns("work", "targets"))
    first = sorted((copy / "results").glob("*.json"))[0]
    r = json.loads(first.read_text())
    r["accuracy"] = 0.0
    first.write_text(json.dumps(r))
    with pytest.raises(InputError, match=f"unit {r['unit']!r} differs between"):
        merge(config, tmp_path / "m", [unsharded, copy])


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "1", "1/2/3", ""])
def test_bad_shard_specs_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--shard"):
        parse_shard(text)


def test_the_report_can_be_rewritten_from_the_results_alone(unsharded: Path) -> None:
    before = (unsharded / "table.csv").read_text()
    report = write_report(unsharded)
    assert (unsharded / "table.csv").read_text() == before and report["done"] == report["units"]


def test_a_partial_comparison_never_reads_as_complete(config: CompareConfig, unsharded: Path,
                                                     tmp_path: Path) -> None:
    """With one seed's results missing, the table header and the results page name the seeds that have results
    and count the finished units; the complete comparison lists every seed."""
    partial = tmp_path / "partial"
    (partial / "results").mkdir(parents=True)
    (partial / "compare.json").write_bytes((unsharded / "compare.json").read_bytes())
    for f in (unsharded / "results").glob("*-s0.json"):
        (partial / "results" / f.name).write_bytes(f.read_bytes())
    n_units = len(plan(config))
    write_report(partial)
    header = (partial / "table.md").read_text().splitlines()[2]
    assert f"seeds 0 (of 0, 1; {n_units // 2} of {n_units} units finished)" in header
    results_page([partial, unsharded], tmp_path / "page.md")
    page = (tmp_path / "page.md").read_text()
    assert f"Seeds 0 (of 0, 1; {n_units // 2} of {n_units} units finished)" in page
    assert "Seeds 0, 1;" in page


def test_a_pretrained_comparison_starts_the_target_and_the_finders_from_each_seeds_pretraining(
        tmp_path: Path) -> None:
    """With [pretrain], each seed's dense pre-training runs once and its final weights start that seed's target
    and every finder (their run configurations name it, and their summaries record the transfer)."""
    cfg = CompareConfig.from_dict({**CONFIG, "seeds": [3], "construct": [],
                                   "pretrain": {"data": {"dataset": "digits", "train_subset": 128},
                                                "model": {"model": "fc2", "width": 0.05}, "optim": {"epochs": 1}}})
    out = tmp_path / "pre"
    compare(cfg, out, device="cpu")
    pre = out / "pretrain" / "s3"
    assert json.loads((pre / "summary.json").read_text())["density"] == 1.0
    runs = [out / "targets" / "s3", out / "work" / "find-magnitude-d0.5-s3"]
    for run in runs:
        assert json.loads((run / "config.json").read_text())["config"]["model"]["init_from"] == str(pre)
        assert "init_from" in json.loads((run / "summary.json").read_text())  # the weights were loaded
    assert {r["unit"] for r in read_results(out)} == {"dense-s3", "find-magnitude-d0.5-s3"}


def test_a_construction_can_approximate_a_finders_sparse_ticket(tmp_path: Path) -> None:
    """``target = { find, density }``: the construction approximates that finder's ticket of the seed (its pruned
    weights are exact zeros in the recorded target), trained once and reused by the finder's own unit."""
    from safetensors.torch import load_file

    from strongticket.ticket import Ticket

    cfg = CompareConfig.from_dict({**CONFIG, "seeds": [0], "construct": [
        {"method": "pensia", "label": "2L on magnitude", "target": {"find": "magnitude", "density": 0.5},
         "options": {"per_weight_eps": 0.02, "objective": "sparsest"}}]})
    out = tmp_path / "sparse"
    compare(cfg, out, device="cpu")
    results = {r["unit"]: r for r in read_results(out)}
    built, found = results["construct-2L-on-magnitude-s0"], results["find-magnitude-d0.5-s0"]
    assert built["target_accuracy"] == pytest.approx(found["accuracy"], abs=2 / 360)  # the same network
    ticket = Ticket.load(out / "work" / "construct-2L-on-magnitude-s0")
    masks = load_file(str(out / "work" / "find-magnitude-d0.5-s0" / "mask.safetensors"))
    targets = [v for k, v in ticket.arrays.items() if k.startswith("target.") and k.endswith("weight")]
    pruned = list(zip(targets, masks.values(), strict=True))  # the same layers, in order
    assert all(t.shape == m.shape and bool((t[~m.bool()] == 0).all()) for t, m in pruned)
    assert sum(int((~m.bool()).sum()) for _, m in pruned) > 0
    assert built["error_measured"] <= built["error_certified"]


def test_the_reading_measures_a_construction_against_its_own_target() -> None:
    """A construction of a finder's sparse ticket is read against that ticket's accuracy, not the dense one's."""
    from strongticket.compare import reading

    rows = [{"kind": "dense", "row": "dense target", "accuracy_mean": 97.4, "network_params": 1000,
             "wall_time_s": 5.0},
            {"kind": "construct", "row": "2L on imp", "accuracy_mean": 97.9, "target_accuracy": 97.92,
             "ticket_params": 200, "network_params": 290000, "wall_time_s": 1.0, "error_measured": 0.4,
             "error_adversarial": 0.3, "error_certified": 79.5, "certified_norm": "l2"}]
    text = "".join(reading(rows))
    assert "-0.02 points against its target, 97.92 %" in text and "adversarial search from 16 test images 0.3" in text


def test_results_page_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# My notes\n")
    for page in (notes, tmp_path):
        with pytest.raises(InputError, match=r"^--page .* refusing to replace it"):
            results_page([tmp_path / "no-comparison-needed"], page)
    assert notes.read_text() == "# My notes\n" and not (tmp_path / "figures").exists()
