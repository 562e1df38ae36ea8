"""``strongticket compare`` and ``strongticket report`` on comparisons, through the console entry point:
one JSON object with --json, one error line for bad input with nothing written, shards merged by the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.ticket_helpers import run

TOML = """
name = "tiny cli"
seeds = [0]
[train.data]
dataset = "digits"
train_subset = 200
[train.model]
model = "fc2"
width = 0.05
[train.optim]
epochs = 1
[[construct]]
method = "pensia"
options = { per_weight_eps = 0.05, objective = "sparsest" }
[[find]]
method = "random"
densities = [0.5]
"""


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(TOML)
    return p


def test_compare_json_then_shards_merged_by_the_cli_give_the_same_table(config: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["compare", str(config), "--out", str(tmp_path / "all"), "--device", "cpu", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["done"] == report["units"] == 3 and len(report["files"]["figures"]) == 3
    for i in (1, 2):
        code, _, err = run(["compare", str(config), "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/2",
                            "--device", "cpu", "--json"], capsys)
        assert code == 0, err
    code, out, err = run(["compare", str(config), "--out", str(tmp_path / "m"), "--merge", str(tmp_path / "s1"),
                          "--merge", str(tmp_path / "s2")], capsys)
    assert code == 0, err and "3 of 3 units" in out
    tables = []
    for d in ("all", "m"):
        code, out, _ = run(["report", str(tmp_path / d), "--format", "csv"], capsys)
        tables.append([line.rsplit(",", 3)[0] for line in out.splitlines()])  # drop wall time, device, warnings
    assert tables[0] == tables[1]
    code, out, err = run(["report", str(tmp_path / "all"), "--page", str(tmp_path / "docs" / "results.md"),
                          "--export", str(tmp_path / "exported")], capsys)
    assert code == 0, err
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "## tiny cli" in page and "![accuracy vs params](figures/all/accuracy_vs_params.png)" in page
    assert sorted(p.name for p in (tmp_path / "exported" / "results").iterdir()) == sorted(
        p.name for p in (tmp_path / "all" / "results").iterdir())
    assert not (tmp_path / "exported" / "work").exists()


@pytest.mark.parametrize("args, message", [
    (["--shard", "3/2"], "--shard I/K needs 1 <= I <= K, got '3/2'"),
    (["--shard", "x"], "--shard must be I/K"),
    (["--device", "bogus"], "--device must be"),
    (["--shard", "1/2", "--merge", "elsewhere"], "do not combine it with --shard"),
])
def test_bad_compare_input_is_one_line_and_writes_nothing(args: list[str], message: str, config: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["compare", str(config), "--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err and out == ""
    assert not (tmp_path / "o").exists()


def test_a_bad_config_names_the_file_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(TOML.replace("epochs = 1", "epochs = 1\ncolour = 2"))
    code, _, err = run(["compare", str(p), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.count("\n") == 1 and "bad.toml" in err and "colour" in err
    assert not (tmp_path / "o").exists()


def test_report_refuses_results_of_different_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, dataset in (("a", "digits"), ("b", "mnist")):
        d = tmp_path / name
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"method": "random", "dataset": dataset, "model": "fc2",
                                                    "density": 0.5, "test_accuracy": 0.5}))
    # --figures asks for the comparison's view, which puts every result in one table
    code, _, err = run(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--figures", str(tmp_path / "f")],
                       capsys)
    assert code == 2 and "different datasets" in err and err.count("\n") == 1
