"""What every command shares: --help renders without typer's placeholders and with full defaults off a terminal."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from strongticket.cli.app import app

COMMANDS = [["construct"], ["verify"], ["demo"], ["train"], ["report"], ["export"], ["proofs"], ["rss", "solve"],
            ["rss", "bench"], []]


def _option_rows(out: str) -> dict[str, str]:
    """``{--option: its whole row}``, continuation lines joined and whitespace collapsed."""
    rows: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        text = line.strip().strip("│").strip()
        if text.startswith("--"):
            current = text.split()[0]
            rows[current] = text
        elif current and text and not line.lstrip().startswith(("╰", "╭")):
            rows[current] += " " + text
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in rows.items()}


def _help(command: list[str]) -> str:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_construct_help_shows_no_placeholders_and_full_defaults():
    out = _help(["construct"])
    assert "<bool>" not in out and "{" not in out and "}" not in out
    assert re.search(r"Usage: \S+ construct \[OPTIONS\] OUT\b", out)
    rows = _option_rows(out)
    for option, default in (("--bias", "no-bias"), ("--strict", "strict"), ("--seed", "0"),
                            ("--method", "pensia"), ("--width", "1.0")):
        assert f"[default: {default}]" in rows[option], rows[option]
    assert "…" not in out  # rich cut long cells with an ellipsis at 80 columns off a terminal


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_no_command_help_has_bool_types_brace_placeholders_or_cut_text(command):
    out = _help(command)
    assert "<bool>" not in out
    assert not re.search(r"\{\w+\}", out)
    assert "…" not in out


@pytest.mark.parametrize("command, option, default", [
    (["train"], "--data-dir", "$STRONGTICKET_DATA"), (["compare"], "--data-dir", "$STRONGTICKET_DATA"),
    (["essential"], "--data-dir", "$STRONGTICKET_DATA"), (["verify", "ticket"], "--data-dir", "$STRONGTICKET_DATA"),
    (["rss", "solve"], "--time-limit", "no limit")])
def test_an_option_without_a_value_says_what_it_falls_back_to(command, option, default):
    assert f"(default {default})" in _option_rows(_help(command))[option] or \
        f"(default: {default})" in _option_rows(_help(command))[option]


def test_optional_and_repeated_arguments_use_click_usage_names():
    assert re.search(r"report \[OPTIONS\] RUNS\.\.\.", _help(["report"]))


@pytest.fixture(scope="module")
def small_ticket(tmp_path_factory):
    """A pensia ticket of the tiny LeNet-300-100 the construct tests use (a second to build)."""
    from tests.cli.ticket_helpers import save_small_ticket

    root = tmp_path_factory.mktemp("seed")
    save_small_ticket(root / "ticket")
    return root


SEED_COMMANDS = {
    "rss solve": ["rss", "solve", "{root}/inst.npz", "--method", "local_search", "--out", "{root}/sel.safetensors"],
    "rss bench": ["rss", "bench", "--n", "4", "--methods", "exact", "--targets", "10", "--repeats", "1"],
    "rss bench mrss": ["rss", "bench", "--methods", "mrss_search", "--dims", "2", "--n", "8", "--targets", "2",
                       "--plot", "{root}/bench.png"],
    "rss curve": ["rss", "curve", "--n", "4", "--trials", "5", "--eps", "0.1", "--mrss-d", "", "--out", "{root}/curve"],
    "verify scaling": ["verify", "scaling", "--quick", "--dims", "1", "--targets", "2"],
    "verify": ["verify", "{root}/ticket", "--count", "10", "--restarts", "1", "--steps", "1"],
    "bench compact": ["bench", "compact", "{root}/ticket", "--repeats", "1"],
}


@pytest.mark.parametrize("seed", ["-1", str(2 ** 64)])
@pytest.mark.parametrize("command", SEED_COMMANDS)
def test_a_seed_no_generator_takes_is_one_error_line_and_writes_nothing(small_ticket, capsys, command, seed):
    import numpy as np

    from tests.cli.ticket_helpers import run, snapshot

    root = small_ticket
    rng = np.random.default_rng(0)
    np.savez(root / "inst.npz", targets=rng.uniform(-1, 1, 3), candidates=rng.uniform(-1, 1, (3, 8)))
    before = snapshot(root)
    code, out, err = run([a.format(root=root) for a in SEED_COMMANDS[command]] + ["--seed", seed], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and re.match(r"error: (--)?seed must be an integer in \[0, 9223372036854775807\], "
                                              rf"got {seed}$", err.strip()), err
    assert snapshot(root) == before
