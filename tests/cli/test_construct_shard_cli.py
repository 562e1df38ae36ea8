"""``strongticket construct --shard I/K`` and ``--merge DIR ...``: slices merged equal one unsharded run."""

from __future__ import annotations

import json

import pytest

from strongticket.construct import engine
from strongticket.ticket import Ticket
from tests.cli.ticket_helpers import ZOO, run, snapshot, write_checkpoint
from tests.construct.test_shard import assert_same_ticket


@pytest.fixture
def ckpt(tmp_path):
    return write_checkpoint(tmp_path / "target.safetensors")


def argv(out, ckpt, *extra):
    return ["construct", str(out), *ZOO, "--checkpoint", str(ckpt), "--per-weight-eps", "0.05", "--samples", "6",
            "--no-strict", "--seed", "4", *extra]


def test_three_slices_merged_equal_the_unsharded_ticket(tmp_path, capsys, ckpt, monkeypatch):
    monkeypatch.setattr(engine, "UNIT_ELEMENTS", 1)  # a unit per row: slices cut through every layer
    assert run(argv(tmp_path / "whole", ckpt), capsys)[0] == 0
    for i in (1, 2, 3):
        code, out, err = run(argv(tmp_path / f"s{i}", ckpt, "--shard", f"{i}/3", "--json"), capsys)
        assert code == 0, err
        report = json.loads(out)
        assert report["shard"] == f"{i}/3" and report["ran"] == report["units"] > 0 and report["skipped"] == 0
    code, out, err = run(argv(tmp_path / "s2", ckpt, "--shard", "2/3", "--json"), capsys)
    assert code == 0 and json.loads(out)["ran"] == 0  # a rerun of a finished slice skips every unit
    code, out, err = run(["construct", str(tmp_path / "merged"), "--merge", str(tmp_path / "s3"), "--merge",
                          str(tmp_path / "s1"), "--merge", str(tmp_path / "s2"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["ticket"] == str(tmp_path / "merged")
    assert_same_ticket(Ticket.load(tmp_path / "merged"), Ticket.load(tmp_path / "whole"))


@pytest.mark.parametrize("extra, message", [
    (["--shard", "4/3"], "--shard I/K needs 1 <= I <= K, got '4/3'"),
    (["--shard", "x"], "--shard must be I/K"),
    (["--shard", "1/2", "--method", "lplus1"], "--shard does not apply to --method lplus1"),
])
def test_a_bad_shard_is_one_line_and_writes_nothing(tmp_path, capsys, ckpt, extra, message):
    if "lplus1" in extra:  # lplus1 takes --eps, not --per-weight-eps / --samples
        args = ["construct", str(tmp_path / "s"), *ZOO, "--checkpoint", str(ckpt), "--eps", "0.1", *extra]
    else:
        args = argv(tmp_path / "s", ckpt, *extra)
    code, _, err = run(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s").exists()


def test_merge_takes_its_configuration_from_the_slices_only(tmp_path, capsys, ckpt):
    assert run(argv(tmp_path / "s1", ckpt, "--shard", "1/2"), capsys)[0] == 0
    code, _, err = run(["construct", str(tmp_path / "t"), "--merge", str(tmp_path / "s1"), "--eps", "0.1"], capsys)
    assert code == 2 and "--merge takes the construction and its target from the slice directories" in err
    code, _, err = run(["construct", str(tmp_path / "t"), "--merge", str(tmp_path / "s1")], capsys)
    assert code == 2 and "slice(s) 2/2 missing" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists()


def test_a_foreign_directory_is_never_used_as_a_slice(tmp_path, capsys, ckpt):
    thesis = tmp_path / "thesis"
    (thesis / "sub").mkdir(parents=True)
    (thesis / "thesis.txt").write_text("mine")
    before = snapshot(thesis)
    code, _, err = run(argv(thesis, ckpt, "--shard", "1/2", "--overwrite"), capsys)
    assert code == 2 and "did not write" in err
    assert snapshot(thesis) == before
