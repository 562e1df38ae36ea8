"""proofs_check as a whole: fast mode passes and covers the A items and the derivable D items; reporting, exit codes,
crashes reported as failures, and no dependency on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import strongticket.subsetsum
from proofs_check import counting, runner, statistical
from proofs_check.__main__ import main
from proofs_check.core import FAILED, PROVED, SKIPPED, STATUSES, Outcome, check, run_check
from proofs_check.counting import covering_radius
from proofs_check.statistical import first_success, prefix_rss, quantile_n, wilson


@pytest.fixture(scope="module")
def fast_results():
    return runner.run_checks(slow=False, seed=0)


def test_fast_mode_has_no_failed_check(fast_results):
    failed = [(r.name, r.detail) for r in fast_results if r.status == FAILED]
    assert not failed, failed


def test_fast_mode_covers_every_A_item_and_the_derivable_D_items(fast_results):
    items = {r.item for r in fast_results if r.status != "skipped"}
    assert {"A1", "A2", "A3", "A4", "A5", "A6"} <= items
    assert {"D17", "D18", "D22", "D23"} <= items
    listed = {r.item for r in fast_results}
    assert {"D19", "D20", "D21"} <= listed  # structural items are listed with a status even when skipped


def test_exact_identities_are_proved_not_just_sampled(fast_results):
    by_name = {r.name: r.status for r in fast_results}
    for name in ("relu_split", "relu_homogeneity", "block_identity", "leaky_relu_split", "smooth_split_identity",
                 "tanh_taylor_remainder", "sigmoid_tanh_identity", "sigmoid_taylor_remainder", "product_density",
                 "lueker_sample_size_rearrangement", "error_recurrence_closed_form", "per_weight_budget",
                 "rss_counting_bound", "mrss_counting_bound"):
        assert by_name[name] == PROVED, name


def test_every_check_states_its_lemma_and_cites_a_paper():
    for fn in runner.collect(slow=True):
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, fn.__name__
        assert fn.check_paper and fn.check_item[0] in "ABCD", fn.__name__


def test_slow_checks_run_only_in_slow_mode():
    fast = {fn.__name__ for fn in runner.collect(slow=False)}
    slow = {fn.__name__ for fn in runner.collect(slow=True)}
    assert fast < slow
    assert all(fn.check_item.startswith("C") for fn in runner.collect(slow=True) if fn.__name__ not in fast)


def test_json_mode_prints_one_object_and_exits_zero(capsys):
    assert main(["--json", "--only", "relu"]) == 0
    out = capsys.readouterr().out
    obj = json.loads(out)
    assert obj["ok"] is True and obj["mode"] == "fast"
    assert {c["name"] for c in obj["checks"]} >= {"relu_split", "relu_homogeneity"}
    assert set(obj["counts"]) == set(STATUSES)


@check(item="A0", paper="nobody")
def _always_fails(seed: int) -> Outcome:
    """A lemma that does not hold, to see the runner report it."""
    return Outcome(FAILED, "counterexample")


@check(item="A0", paper="nobody")
def _raises(seed: int) -> Outcome:
    """A check that crashes."""
    raise ZeroDivisionError("boom")


def test_a_failed_check_gives_exit_code_1_and_is_listed(monkeypatch, capsys):
    monkeypatch.setattr(runner, "collect", lambda slow=False, only=None: [_always_fails])
    assert main(["--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is False and obj["checks"][0]["status"] == FAILED


def test_a_crashing_check_is_reported_as_failed_not_raised():
    r = run_check(_raises, 0)
    assert r.status == FAILED and "ZeroDivisionError" in r.detail


def test_cli_command_exits_1_on_failure(monkeypatch):
    from strongticket.cli.proofs import proofs

    app = typer.Typer()
    app.command("proofs")(proofs)
    app.command("other")(lambda: None)
    ok = CliRunner().invoke(app, ["proofs", "--only", "block", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"]
    monkeypatch.setattr(runner, "collect", lambda slow=False, only=None: [_always_fails])
    bad = CliRunner().invoke(app, ["proofs", "--seed", "3"])
    assert bad.exit_code == 1 and "failed" in bad.stdout


def test_prefix_covering_radius_matches_exact_rational_computation():
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.integers(-1000, 1001, size=6) / 1000
        R, E = prefix_rss(x, ((-1.0, 1.0), (-0.5, 0.5)), np.array([0.3, -0.7]))
        for m in range(1, 7):
            xs = [Fraction(int(round(v * 1000)), 1000) for v in x[:m]]
            sums = [sum((xs[i] for i in range(m) if b >> i & 1), Fraction(0)) for b in range(2 ** m)]
            assert R[0, m - 1] == pytest.approx(float(covering_radius(sums, Fraction(-1), Fraction(1))[0]), abs=1e-12)
            assert R[1, m - 1] == pytest.approx(float(covering_radius(sums, Fraction(-1, 2), Fraction(1, 2))[0]),
                                                abs=1e-12)
            assert E[0, m - 1] == pytest.approx(min(abs(float(s) - 0.3) for s in sums), abs=1e-12)
        assert np.all(np.diff(R, axis=1) <= 0)  # more candidates never hurt


def test_statistics_helpers():
    err = np.array([[0.5, 0.2, 0.05], [0.5, 0.5, 0.5]])
    assert first_success(err, 0.1).tolist() == [3, 4]
    assert quantile_n(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 0.1) == 9
    lo, hi = wilson(5, 100)
    assert lo < 0.05 < hi and 0 <= lo and hi <= 1


def test_only_that_matches_nothing_is_an_error_naming_the_checks():
    assert main(["--only", "no-such-check"]) == 2


def _crashing_solve(*args, **kwargs):
    raise RuntimeError("solver crashed")


@pytest.mark.parametrize("fn", [counting.rss_below_counting_bound_never_covers, statistical.union_bound_full_layer])
def test_a_check_whose_solver_raises_is_reported_failed_not_skipped(monkeypatch, fn):
    monkeypatch.setattr(strongticket.subsetsum, "solve", _crashing_solve)
    r = run_check(fn, 0)
    assert r.status == FAILED and r.status != SKIPPED
    assert "RuntimeError" in r.detail and "solver crashed" in r.detail


def test_proofs_check_runs_without_importing_the_command_line():
    code = ("import sys\nfrom proofs_check.__main__ import main\ncode = main(['--json', '--only', 'relu_split'])\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('strongticket.cli') or m == 'typer')\n"
            "print(code, loaded, file=sys.stderr)\nassert code == 0 and not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ok"] is True


def test_python_dash_m_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "proofs_check", "--only", "relu_split"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "relu_split" in out.stdout and "proved" in out.stdout
