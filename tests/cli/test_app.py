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


def test_a_size_too_large_for_the_machine_is_one_line_and_writes_nothing(tmp_path, capsys):
    code, out, err = run(["demo", "--out", str(tmp_path / "demo"), "--hidden", "99999999999"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: out of memory: the command tried to allocate 25600.0 GB at once; give smaller")
    assert err.count("\n") == 1 and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("error, said", [
    (MemoryError("Unable to allocate 7.28 TiB for an array with shape (1000000, 1000000)"), "7.28 TiB"),
    (RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.2 GiB total capacity)"), None),
    (MemoryError(), "an allocation failed")])
def test_out_of_memory_from_numpy_or_the_gpu_is_one_line(monkeypatch, capsys, error, said):
    import torch

    import strongticket.demo

    if said is None:  # torch raises its OutOfMemoryError (a RuntimeError) on a GPU
        error, said = torch.OutOfMemoryError(str(error)), "20.00 GiB"

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(strongticket.demo, "run_demo", exhausted)
    code, out, err = run(["demo", "--quick"], capsys)
    assert code == 2 and err.startswith("error: out of memory: ") and said in err and err.count("\n") == 1


def test_a_runtime_error_that_is_not_about_memory_keeps_its_traceback(monkeypatch):
    import strongticket.demo
    from strongticket.cli.app import main

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch inside a construction")

    monkeypatch.setattr(strongticket.demo, "run_demo", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["demo", "--quick"])
