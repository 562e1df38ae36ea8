"""The command line's top level: every usage error is one ``error:`` line and exit code 2, never a panel."""

from __future__ import annotations

import pytest

from tests.cli.ticket_helpers import run

USAGE_ERRORS = [
    (["nosuch"], r"No such command 'nosuch'", "strongticket --help"),
    (["verify"], r"Missing argument 'ticket_dir'", "strongticket verify ticket --help"),
    (["demo", "--seed", "abc"], r"Invalid value for '--seed'", "strongticket demo --help"),
    (["demo", "--nope"], r"No such option: --nope", "strongticket demo --help"),
    (["rss", "bench", "--n", "x"], r"--n must be a comma-separated list of ints, got 'x'", None),
]


@pytest.mark.parametrize("argv,message,hint", USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line_naming_the_problem_and_where_to_look(argv, message, hint, capsys):
    import re

    code, out, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, lines[0]) and "╭" not in err and "Traceback" not in err
    if hint:
        assert hint in lines[0]


def test_no_arguments_prints_the_help_and_succeeds(capsys):
    code, out, err = run([], capsys)
    assert code == 0 and "Usage: strongticket" in out + err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only expected errors become one line: a plain ValueError from our own code is not hidden."""
    import strongticket.demo
    from strongticket.cli.app import main

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(strongticket.demo, "run_demo", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["demo", "--quick"])
