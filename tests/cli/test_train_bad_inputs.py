"""Bad input to ``strongticket train``: exit != 0, one ``error:`` line on stderr, no traceback, --out unchanged.

The cases run in-process through the console entry point ``main``; one case also runs as a subprocess, so
the interpreter-level path (imports, exit code) is exercised too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BASE = ["train", "--dataset", "digits", "--model", "fc2", "--width", "0.25", "--epochs", "1", "--device", "cpu"]

TOML = {
    "epochs_str": '[optim]\nepochs = "one"\n', "lr_str": '[optim]\nlr = "0.1"\n',
    "batch_float": "[data]\nbatch_size = 64.5\n", "milestones_str": '[optim]\nmilestones = "1"\n',
    "epochs_float": "[optim]\nepochs = 1.5\n", "seed_bool": "seed = true\n", "amp_str": '[optim]\namp = "yes"\n',
    "milestones_text": '[optim]\nmilestones = "3,4"\n',
}

CASES = [
    ("toml_" + k, ["--config", "{toml}"], k, r"(--config .*: )?\w+\.?\w* \(--[\w-]+\) must be") for k in TOML
] + [
    ("device_bogus", ["--device", "bogus"], None, "device must be"),
    ("snip_without_density", ["--method", "snip"], None, "needs a density"),
    ("train_subset_0", ["--train-subset", "0"], None, r"--train-subset\) must be >= 1, got 0"),
    ("out_is_a_file", ["--overwrite"], "file", "is a file"),
    ("out_is_a_foreign_dir", ["--overwrite"], "dir", "did not write"),
    ("density_0", ["--method", "random", "--density", "0"], None, r"must be in \(0, 1\]"),
    ("gsm_lr_0", ["--method", "gsm", "--density", "0.1", "--weight-decay", "0.01", "--gsm-lr", "0"], None,
     r"prune.gsm_lr \(--gsm-lr\) must be > 0, got 0.0"),
    ("gsm_momentum_adam", ["--method", "gsm", "--density", "0.1", "--weight-decay", "0.01", "--optimizer", "adam",
                           "--gsm-momentum", "0.99"], None, r"--gsm-momentum\) sets an SGD momentum"),
    ("gem_score_lr_negative", ["--method", "gem-miner", "--density", "0.1", "--gem-score-lr", "-1"], None,
     r"prune.gem_score_lr \(--gem-score-lr\) must be > 0, got -1.0"),
    ("gem_momentum_1", ["--method", "gem-miner", "--density", "0.1", "--gem-momentum", "1"], None,
     r"prune.gem_momentum \(--gem-momentum\) must be in \[0, 1\), got 1.0"),
    ("bip_granularity_bogus", ["--method", "bip", "--density", "0.1", "--bip-granularity", "filter"], None,
     r"prune.bip_granularity \(--bip-granularity\) must be one of weight, channel, got 'filter'"),
    ("bip_channel_prune_bias", ["--method", "bip", "--density", "0.1", "--bip-granularity", "channel",
                                "--prune-bias"], None, r"--prune-bias\) is not supported with it"),
    ("lottery_pools_val_too_large", ["--method", "lottery-pools", "--density", "0.5", "--pool-val", "1437"], None,
     r"pool_val \(--pool-val\) must be below the 1437 training images of the digits training set"),
    ("gem_finetune_lr_0", ["--method", "gem-miner", "--density", "0.1", "--gem-finetune-lr", "0"], None,
     r"prune.gem_finetune_lr \(--gem-finetune-lr\) must be > 0, got 0.0"),
]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from strongticket.cli.app import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def run_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess:
    from tests.cli.ticket_helpers import run

    code, out, err = run(args, capsys)
    return subprocess.CompletedProcess(args, code, out, err)


def snapshot(p: Path) -> dict[str, bytes] | None:
    if not p.exists():
        return None
    if p.is_file():
        return {"": p.read_bytes()}
    return {str(f.relative_to(p)): f.read_bytes() if f.is_file() else b"<dir>" for f in sorted(p.rglob("*"))}


@pytest.mark.parametrize("name,args,extra,match", CASES, ids=[c[0] for c in CASES])
def test_bad_train_input_is_one_error_line_and_leaves_out_unchanged(name: str, args: list[str], extra: str | None,
                                                                     match: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    out = tmp_path / "out"
    if extra in TOML:
        (tmp_path / "c.toml").write_text(TOML[extra])
        args = [a.replace("{toml}", str(tmp_path / "c.toml")) for a in args]
    elif extra == "file":
        out = tmp_path / "file.npz"
        out.write_bytes(b"user data")
    elif extra == "dir":
        out.mkdir()
        (out / "thesis.txt").write_text("mine")
    before = snapshot(out)
    monkeypatch.chdir(tmp_path)
    res = run_in_process([*BASE, *args, "--out", str(out)], capsys)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr and re.search(match, lines[0]), lines[0]
    assert snapshot(out) == before


def test_bad_input_through_a_fresh_interpreter_is_one_error_line(tmp_path: Path) -> None:
    res = run_cli([*BASE, "--device", "bogus", "--out", str(tmp_path / "out")], tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert not (tmp_path / "out").exists()
