"""``strongticket rss ...`` end to end: JSON on stdout only, files written, bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from strongticket.cli.app import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def instances(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "inst.npz"
    np.savez(path, targets=rng.uniform(-1, 1, 50), candidates=rng.uniform(-1, 1, (50, 12)))
    return path


def test_solve_writes_selections_and_prints_one_json_object(instances, capsys):
    code, out, err = run(["rss", "solve", str(instances), "--objective", "sparsest", "--eps", "0.05", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["T"] == 50 and summary["n"] == 12 and summary["method"] == "exact"
    saved = load_file(summary["out"])
    assert saved["selection"].shape == (50, 12)
    x = np.load(instances)["candidates"]
    z = np.load(instances)["targets"]
    sums = np.where(saved["selection"].astype(bool), x, 0.0).sum(axis=1)
    np.testing.assert_allclose(sums, saved["sums"], atol=1e-12)
    assert np.all(np.abs(z - saved["sums"])[saved["status"] == 0] <= 0.05)


def test_solve_reads_safetensors(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "inst.safetensors"
    save_file({"targets": rng.uniform(-1, 1, (4, 2)), "candidates": rng.normal(size=(4, 8, 2))}, str(path))
    code, out, err = run(["rss", "solve", str(path), "--method", "brute", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["d"] == 2


@pytest.mark.parametrize("content, args, message", [
    (None, [], "does not exist"),
    ("directory", [], "x.npz' is a directory, expected a .npz or .safetensors file"),
    (b"not a zip", [], "is not a valid .npz file"),
    ("wrongkeys", [], "must hold arrays 'targets'"),
    ("good", ["--eps", "0"], "eps must be a finite number > 0, got 0.0"),
    ("good", ["--method", "magic"], "method must be 'auto' or one of"),
    ("good", ["--method", "brute", "--objective", "sparsest"], "'sparsest' needs eps"),
])
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(tmp_path, capsys, content, args, message):
    path = tmp_path / "x.npz"
    if content == "wrongkeys":
        np.savez(path, a=np.zeros(3))
    elif content == "good":
        np.savez(path, targets=np.zeros(2), candidates=np.ones((2, 3)))
    elif content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    code, out, err = run(["rss", "solve", str(path), *args], capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bench_json_reports_throughput_memory_and_skips_what_cannot_run(capsys):
    code, out, err = run(["rss", "bench", "--n", "8,22", "--methods", "exact,brute", "--targets", "200",
                          "--slow-targets", "3", "--repeats", "1", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    by = {(r["method"], r["n"]): r for r in rows}
    assert by[("exact", 8)]["targets_per_s"] > 0 and by[("exact", 8)]["T"] == 200
    assert by[("brute", 8)]["matches_exact"] == 1.0  # the oracle and the exact solver agree
    assert by[("brute", 22)]["note"].startswith("method 'brute' enumerates")


def test_curve_writes_plot_and_table(tmp_path, capsys):
    code, out, err = run(["rss", "curve", "--n", "2:10", "--trials", "100", "--eps", "0.1,0.05", "--mrss-d", "1,2",
                          "--mrss-n", "2:8", "--mrss-trials", "20", "--out", str(tmp_path), "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert (tmp_path / "rss_curve.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "rss_curve.json").read_text())
    assert saved["one_dim"][0]["dist"] == "uniform"
    success = np.array(result["one_dim"][0]["success"])
    assert success.shape == (9, 2)
    # more candidates never hurt on average: success at n=10 beats n=2 for both eps
    assert np.all(success[-1] > success[0])


def test_version_and_help(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("strongticket ")
    code, out, _ = run(["rss", "--help"], capsys)
    assert code == 0 and "bench" in out and "curve" in out


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on machines without CUDA")
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(instances, capsys):
    code, out, err = run(["rss", "solve", str(instances), "--device", "cuda"], capsys)
    assert code == 2 and "torch sees no CUDA device" in err



@pytest.mark.parametrize("command", ["solve", "bench"])
@pytest.mark.parametrize("device", ["tpu", "meta", "cuda:x"])
def test_an_unknown_device_is_one_line_naming_the_option(instances, tmp_path, capsys, command, device):
    argv = (["rss", "solve", str(instances), "--out", str(tmp_path / "sel.safetensors")] if command == "solve" else
            ["rss", "bench", "--n", "4", "--methods", "exact,torch", "--targets", "10", "--repeats", "1"])
    code, out, err = run([*argv, "--device", device], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: --device must be cpu, cuda or cuda:N") and repr(device) in err
    assert not (tmp_path / "sel.safetensors").exists()


@pytest.mark.parametrize("extra, message", [
    (["--methods", "exact", "--n", "4", "--plot", "{o}"], "--plot draws the MRSS benchmark"),
    (["--methods", "mrss_search", "--dims", "2", "--n", "8", "--dist", "product", "--plot", "{o}"],
     "--dist 'product' applies to the 1-D benchmark only"),
    (["--methods", "mrss_search", "--dims", "2", "--n", "8", "--device", "cuda", "--plot", "{o}"],
     "--device 'cuda' applies to the 1-D benchmark only")])
def test_bench_refuses_an_option_the_other_mode_would_ignore(tmp_path, capsys, extra, message):
    code, out, err = run(["rss", "bench", "--targets", "2", *[a.format(o=tmp_path / "o.png") for a in extra]], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.gpu
def test_bench_times_the_torch_solver_on_the_gpu(capsys):
    code, out, err = run(["rss", "bench", "--n", "14", "--methods", "exact,torch", "--targets", "5000",
                          "--repeats", "1", "--device", "cuda", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["env"]["device"].startswith("cuda")
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["torch"]["err_max"] == rows["exact"]["err_max"]


def test_solve_table_shows_plain_values_not_python_reprs(instances, capsys):
    code, out, err = run(["rss", "solve", str(instances), "--method", "exact"], capsys)
    assert code == 0, err
    assert "None" not in out and "{" not in out and "'" not in out
    assert "optimal: 50" in out and "none" in out  # the status counts, and eps not given


def test_selections_file_carries_the_status_legend_and_what_was_asked(instances, capsys):
    from safetensors import safe_open

    code, out, err = run(["rss", "solve", str(instances), "--objective", "sparsest", "--eps", "0.01", "--json"], capsys)
    assert code == 0, err
    with safe_open(json.loads(out)["out"], framework="numpy") as fh:
        meta = fh.metadata()
    assert meta["status_legend"] == "0=optimal,1=feasible,2=infeasible,3=timeout,4=unknown"
    assert meta["objective"] == "sparsest" and float(meta["eps"]) == 0.01 and meta["method"] == "exact"


def test_an_existing_out_is_kept_unless_overwrite_and_only_our_own_file_is_replaced(instances, tmp_path, capsys):
    dest = tmp_path / "sel.safetensors"
    assert run(["rss", "solve", str(instances), "--out", str(dest)], capsys)[0] == 0
    first = dest.read_bytes()
    code, out, err = run(["rss", "solve", str(instances), "--out", str(dest), "--objective", "sparsest",
                          "--eps", "0.1"], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and len(err.strip().splitlines()) == 1
    assert dest.read_bytes() == first
    code, _, err = run(["rss", "solve", str(instances), "--out", str(dest), "--objective", "sparsest",
                        "--eps", "0.1", "--overwrite"], capsys)
    assert code == 0, err
    assert dest.read_bytes() != first
    victim = tmp_path / "thesis.safetensors"
    victim.write_bytes(b"my thesis")
    code, _, err = run(["rss", "solve", str(instances), "--out", str(victim), "--overwrite"], capsys)
    assert code == 2 and "not one" in err and victim.read_bytes() == b"my thesis"
    code, _, err = run(["rss", "solve", str(instances), "--out", str(instances), "--overwrite"], capsys)
    assert code == 2 and "must differ from the instance file" in err


def test_fixed_size_larger_than_n_is_an_error_not_all_infeasible(instances, tmp_path, capsys):
    dest = tmp_path / "sel.safetensors"
    code, out, err = run(["rss", "solve", str(instances), "--objective", "fixed_size", "--size", "99",
                          "--out", str(dest)], capsys)
    assert code == 2 and out == ""
    assert "size must be <= n, the 12 candidates per instance, got 99" in err
    assert len(err.strip().splitlines()) == 1 and not dest.exists()


def test_curve_says_why_an_interval_is_missing_instead_of_printing_nan(tmp_path, capsys):
    code, out, err = run(["rss", "curve", "--n", "2:10", "--trials", "100", "--eps", "0.1,0.05", "--mrss-d", "1,2",
                          "--mrss-n", "2:8", "--mrss-trials", "20", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "nan" not in out.lower()
    assert "n/a (needs >= 3 points, got 2)" in out


def test_bench_refuses_mixing_1d_and_mrss_methods_in_one_line(capsys):
    code, out, err = run(["rss", "bench", "--n", "8", "--methods", "exact,mrss_search", "--targets", "10"], capsys)
    assert code == 2 and out == ""
    assert "exact" in err and "1-D" in err and "mrss_search" in err and len(err.strip().splitlines()) == 1


def test_bench_refuses_mrss_methods_it_does_not_time_in_one_line(capsys):
    code, out, err = run(["rss", "bench", "--methods", "mrss_exact", "--dims", "3", "--n", "8"], capsys)
    assert code == 2 and out == ""
    assert "mrss_exact" in err and "mrss_descent" in err and len(err.strip().splitlines()) == 1


def test_bench_mrss_mode_reports_search_against_descent_with_a_plot(tmp_path, capsys):
    png = tmp_path / "b.png"
    code, out, err = run(["rss", "bench", "--methods", "mrss_search", "--dims", "3,9", "--n", "16,40",
                          "--targets", "6", "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    rows = doc["rows"]
    assert [(r["d"], r["n"]) for r in rows] == [(3, 16), (3, 40), (9, 16), (9, 40)]
    for r in rows:
        assert r["targets"] == 6 and r["search_tps_2cores"] > 0 and r["descent_tps_2cores"] > 0
        assert r["ratio"] == pytest.approx(r["descent_median"] / r["search_median"])
        assert r["cpsat_median"] is None  # CP-SAT only when mrss_milp is named
    assert png.stat().st_size > 1000 and json.loads(png.with_suffix(".json").read_text())["rows"] == rows


def test_bench_mrss_mode_runs_cpsat_on_a_prefix_when_named(tmp_path, capsys):
    code, out, err = run(["rss", "bench", "--methods", "mrss_search,mrss_milp", "--dims", "2", "--n", "12",
                          "--targets", "4", "--slow-targets", "2", "--time-limit", "5", "--plot",
                          str(tmp_path / "c.png"), "--json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)["rows"]
    assert row["cpsat_targets"] == 2 and row["cpsat_optimal"] == 2  # n = 12: CP-SAT proves the optimum
    assert row["cpsat_median"] <= row["search_median_on_cpsat_targets"] + 1e-6


@pytest.mark.parametrize("argv, word", [
    (["--dims", "0"], "--dims"), (["--dims", "9", "--n", "x"], "--n"), (["--dims", "9", "--targets", "0"], "--targets"),
    (["--dims", "9", "--plot", "out.txt"], "--plot"),
])
def test_bench_mrss_mode_bad_input_is_one_line(argv, word, capsys):
    code, out, err = run(["rss", "bench", "--methods", "mrss_search", *argv], capsys)
    assert code == 2 and out == ""
    assert word in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["rss", "bench", "--n", "10:4,12", "--methods", "exact", "--targets", "10"],
                                  ["rss", "curve", "--n", "9:5", "--trials", "5", "--mrss-d", "", "--out", "{o}"]])
def test_an_empty_range_is_an_error_not_silently_dropped(tmp_path, capsys, argv):
    code, out, err = run([a.format(o=tmp_path / "o") for a in argv], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "error: --n range " in err and "is empty: a:b needs a <= b" in err
    assert not (tmp_path / "o").exists()


MRSS_BENCH = ["rss", "bench", "--methods", "mrss_search", "--dims", "2", "--n", "8", "--targets", "2"]


@pytest.mark.parametrize("table", [False, True])
def test_bench_mrss_mode_never_replaces_an_existing_file_unasked(tmp_path, capsys, table):
    png = tmp_path / "mine.png"
    mine = png.with_suffix(".json") if table else png
    mine.write_text("the user's own file")
    code, out, err = run([*MRSS_BENCH, "--plot", str(png), "--json"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(mine) in err and "pass --overwrite" in err
    assert mine.read_text() == "the user's own file" and len(list(tmp_path.iterdir())) == 1  # before any work
    code, out, err = run([*MRSS_BENCH, "--plot", str(png), "--json", "--overwrite"], capsys)
    assert code == 0, err
    assert json.loads(png.with_suffix(".json").read_text())["rows"] == json.loads(out)["rows"]


def test_bench_overwrite_never_replaces_a_directory_and_is_refused_in_1d_mode(tmp_path, capsys):
    (tmp_path / "d.png").mkdir()
    code, out, err = run([*MRSS_BENCH, "--plot", str(tmp_path / "d.png"), "--overwrite"], capsys)
    assert code == 2 and out == "" and "is a directory" in err and (tmp_path / "d.png").is_dir()
    code, out, err = run(["rss", "bench", "--methods", "exact", "--n", "4", "--targets", "2", "--overwrite"], capsys)
    assert code == 2 and out == "" and "drop --overwrite" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["rss_curve.png", "rss_curve.json"])
def test_curve_never_replaces_an_existing_file_unasked(tmp_path, capsys, name):
    mine = tmp_path / name
    mine.write_text("the user's own file")
    argv = ["rss", "curve", "--n", "2:6", "--trials", "10", "--eps", "0.1", "--mrss-d", "", "--dists", "uniform",
            "--out", str(tmp_path), "--json"]
    code, out, err = run(argv, capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert str(mine) in err and "pass --overwrite" in err
    assert mine.read_text() == "the user's own file" and len(list(tmp_path.iterdir())) == 1  # before any work
    code, out, err = run([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "rss_curve.json").read_text())["one_dim"] == json.loads(out)["one_dim"]
    (tmp_path / name).unlink()
    (tmp_path / name).mkdir()
    code, out, err = run([*argv, "--overwrite"], capsys)
    assert code == 2 and "is a directory" in err and (tmp_path / name).is_dir()


@pytest.mark.parametrize("method", ["exact", "brute"])
def test_solve_refuses_a_time_limit_the_method_would_ignore_before_any_work(instances, capsys, method):
    code, out, err = run(["rss", "solve", str(instances), "--method", method, "--time-limit", "5"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"method '{method}' runs to its end" in err and "local_search" in err
    assert not instances.with_name("inst.selection.safetensors").exists()
    code, out, err = run(["rss", "solve", str(instances), "--method", "local_search", "--time-limit", "5", "--json"],
                         capsys)
    assert code == 0 and json.loads(out)["status"] == {"feasible": 50}
