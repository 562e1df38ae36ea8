"""The ticket-transfer table: kinds read from run directories, grouping over seeds, mean ± sample std, and
damaged summaries named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from strongticket.errors import InputError
from strongticket.report.transfer import ticket_kind, to_markdown, transfer_runs, transfer_table


def fake_run(root: Path, name: str, *, dataset: str, optimizer: str, seed: int, accuracy: float,
             method: str = "transfer", source: tuple[str, str] | None = None, **summary) -> Path:
    """A run directory holding just the config.json and summary.json fields the table reads."""
    run = root / name
    run.mkdir(parents=True)
    cfg = {"config": {"data": {"dataset": dataset}, "optim": {"optimizer": optimizer}, "seed": seed}}
    (run / "config.json").write_text(json.dumps(cfg))
    s = {"method": method, "density": 0.1, "test_accuracy": accuracy, **summary}
    if source is not None:
        s |= {"transfer_source_dataset": source[0], "transfer_source_optimizer": source[1],
              "transfer_shuffle": False, "transfer_weights": "source-init"} | summary
    (run / "summary.json").write_text(json.dumps(s))
    return run


@pytest.mark.parametrize("summary,source,target,kind", [
    ({"method": "transfer"}, "mnist/sgd", "mnist/adam", "transferred"),
    ({"method": "transfer"}, "mnist/sgd", "mnist/sgd", "target-drawn"),
    ({"method": "transfer", "transfer_shuffle": True}, "mnist/sgd", "mnist/sgd", "shuffled"),
    ({"method": "transfer", "transfer_weights": "own-init"}, "mnist/sgd", "mnist/adam", "reinit"),
    ({"method": "imp"}, "mnist/sgd", "mnist/sgd", "imp"),
])
def test_each_run_gets_the_kind_its_summary_says(summary: dict, source: str, target: str, kind: str) -> None:
    assert ticket_kind(summary, source, target) == kind


def test_runs_group_by_source_target_and_kind_with_mean_and_sample_std_over_seeds(tmp_path: Path) -> None:
    for seed, acc in [(0, 0.90), (1, 0.94)]:
        fake_run(tmp_path, f"s{seed}/t", dataset="fashion-mnist", optimizer="sgd", seed=seed, accuracy=acc,
                 source=("mnist", "sgd"))
        fake_run(tmp_path, f"s{seed}/own", dataset="fashion-mnist", optimizer="sgd", seed=seed, accuracy=acc - 0.1,
                 source=("fashion-mnist", "sgd"))
        fake_run(tmp_path, f"s{seed}/sh", dataset="fashion-mnist", optimizer="sgd", seed=seed, accuracy=0.5,
                 source=("mnist", "sgd"), transfer_shuffle=True)
    fake_run(tmp_path, "s0/imp", dataset="fashion-mnist", optimizer="sgd", seed=0, accuracy=0.8, method="imp")
    rows = transfer_table(transfer_runs([tmp_path]))
    got = [(r["source"], r["kind"], r["runs"]) for r in rows]
    # the target's own configuration first (its ticket, then the IMP run), then the other sources
    assert got == [("fashion-mnist/sgd", "target-drawn", 2), ("fashion-mnist/sgd", "imp", 1),
                   ("mnist/sgd", "transferred", 2), ("mnist/sgd", "shuffled", 2)]
    transferred = rows[2]
    assert transferred["target"] == "fashion-mnist/sgd" and transferred["seeds"] == "0,1"
    assert transferred["accuracy_mean"] == pytest.approx(92.0)
    assert transferred["accuracy_std"] == pytest.approx(math.sqrt(8.0))  # (2² + 2²) / (2 − 1)
    assert rows[1]["accuracy_std"] is None  # one run: no spread
    assert rows[3]["accuracy_std"] == 0.0
    text = to_markdown(rows)
    assert "| mnist/sgd | fashion-mnist/sgd | transferred | 2 | 0.1 | 92.00 ± 2.83 |" in text
    assert "| fashion-mnist/sgd | fashion-mnist/sgd | imp | 1 | 0.1 | 80.00 |" in text
    assert text.splitlines()[0].endswith("| test accuracy (%) |")


def test_a_damaged_summary_is_named(tmp_path: Path) -> None:
    fake_run(tmp_path, "r", dataset="mnist", optimizer="sgd", seed=0, accuracy="high", source=("mnist", "sgd"))
    with pytest.raises(InputError, match=r"summary.json' is damaged: test_accuracy must be a number, got 'high'"):
        transfer_runs([tmp_path])


def test_no_runs_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no finished runs"):
        transfer_runs([tmp_path])
