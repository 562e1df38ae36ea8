"""Inertial-manifold reconstruction: energy scores on a hand-made eigenspace, exact density of both masks, the
SGD phase cut at im_steps (and the note when the schedule is shorter), the magnitude control in the summary,
the option check, and resume after a kill (inside the cut phase too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from strongticket.errors import InputError
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.methods.inertial import energy_scores, mask_agreement
from strongticket.train.run import train_run
from tests.train.test_resume import check_kills


def config(density: float = 0.2, epochs: int = 2, **prune) -> RunConfig:
    prune = {"im_steps": 5, "im_lanczos": 12, "im_max_rank": 6, "im_batches": 2, **prune}
    return RunConfig(data=DataConfig(dataset="digits", batch_size=128, train_subset=384, test_subset=100),
                     model=ModelConfig(model="fc2", width=0.25),
                     optim=OptimConfig(epochs=epochs, lr=0.05, momentum=0.9),
                     prune=PruneConfig(method="inertial", density=density, **prune), seed=1)


def test_energy_is_the_diagonal_of_the_rank_k_hessian() -> None:
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    lam = torch.tensor([9.0, 4.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64)
    for k in (1, 2, 4):
        hk = q[:, :k] @ torch.diag(lam[:k]) @ q[:, :k].T
        torch.testing.assert_close(energy_scores(lam, q, k), torch.diagonal(hk))
    with pytest.raises(InputError, match=r"k must be in \[1, 6\], got 7"):
        energy_scores(lam, q, 7)


def test_mask_agreement_counts_shared_kept_entries() -> None:
    a = {"w": torch.tensor([True, True, False, False])}
    b = {"w": torch.tensor([True, False, True, False])}
    assert mask_agreement(a, b) == 0.5 and mask_agreement(a, a) == 1.0


def test_inertial_prunes_at_im_steps_to_the_exact_density_and_records_its_control(tmp_path: Path) -> None:
    s = train_run(config(density=0.2), tmp_path / "run", device="cpu")
    assert s["kept"] == round(0.2 * s["prunable"])
    im = s["inertial"]
    assert "reconstruction from the abstract of Zhang et al. 2021" in im["reconstruction"]
    assert im["sgd_steps"] == s["phases"]["sgd"]["step"] == 5 and "note" not in im
    assert 1 <= im["rank"] <= 6 and im["lanczos_iterations"] == 12
    assert im["eigenvalues"] == sorted(im["eigenvalues"], reverse=True) and im["eigenvalues"][0] > 0
    assert im["hessian_dim"] == s["params"]  # every trainable parameter spans the Hessian
    assert s["test_accuracy"] == im["test_accuracy"]
    assert isinstance(im["magnitude_test_accuracy"], float)
    assert set(s["phases"]) == {"sgd", "lanczos", "train", "magnitude-control"}
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    masks = {x["phase"]: x for x in lines if x["event"] == "mask"}
    assert masks["prune"]["kept"] == masks["magnitude-control"]["kept"] == s["kept"]
    spectrum = next(x for x in lines if x["event"] == "inertial_spectrum")
    assert spectrum["rank"] == im["rank"] and spectrum["eigenvalues"][:10] == im["eigenvalues"]
    # the SGD phase stopped at step 5 of its 6: the control and the ticket each trained a full phase afterwards
    assert s["phases"]["train"]["step"] == s["phases"]["magnitude-control"]["step"] == 6


def test_inertial_says_so_when_the_schedule_is_shorter_than_im_steps(tmp_path: Path) -> None:
    s = train_run(config(epochs=1, im_steps=50), tmp_path / "run", device="cpu")
    assert s["inertial"]["sgd_steps"] == 3
    assert "fewer than --im-steps 50: pruned after 3" in s["inertial"]["note"]


def test_inertial_refuses_a_max_rank_without_a_next_eigenvalue(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--im-max-rank must be below --im-lanczos .* got 12 and 12$"):
        train_run(config(im_max_rank=12), tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_inertial_resumes_identically_after_kills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # inside the cut SGD phase (its mid-phase checkpoint at step 3) and inside the control; test_resume's
    # inertial case adds the kill between phases and before the last metrics line
    points = [("save", 1), ("save", 5)]
    check_kills(config(), tmp_path, monkeypatch, points)
