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


def test_optional_and_repeated_arguments_use_click_usage_names():
    assert re.search(r"report \[OPTIONS\] RUNS\.\.\.", _help(["report"]))
