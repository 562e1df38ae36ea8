"""Tests of :mod:`strongticket.report.runs` on hand-written run directories (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongticket.errors import InputError
from strongticket.report.runs import collect, report_paths, to_csv


def fake_run(path: Path, width: float, density: object = 0.5) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"config": {"model": {"width": width}}}))
    (path / "summary.json").write_text(json.dumps({"method": "snip", "model": "fc2", "dataset": "digits",
                                                   "density": density, "test_accuracy": 0.9}))
    return path


def test_damaged_summary_is_a_one_line_input_error(tmp_path: Path) -> None:
    fake_run(tmp_path / "r", 1.0, density="abc")
    with pytest.raises(InputError, match="density must be a number, got 'abc'"):
        collect([tmp_path])


def test_runs_of_different_widths_are_told_apart(tmp_path: Path) -> None:
    fake_run(tmp_path / "a", 0.5)
    fake_run(tmp_path / "b", 2.0)
    rows = collect([tmp_path])
    assert sorted(r["width"] for r in rows) == [0.5, 2.0]
    assert to_csv(rows).splitlines()[0].split(",")[3] == "width"


def test_an_empty_path_names_no_run_and_is_never_the_current_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_run(tmp_path / "r", 1.0)
    monkeypatch.chdir(tmp_path)  # Path("") is ".": these runs would be tabulated
    for paths in ([""], [str(tmp_path / "r"), ""]):
        with pytest.raises(InputError, match="an empty path names no run"):
            collect(paths)
    with pytest.raises(InputError, match="no run path given"):
        report_paths([])
    assert len(collect(["."])) == 1 and report_paths(["r"]) == [Path("r")]
