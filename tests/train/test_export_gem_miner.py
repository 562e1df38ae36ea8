"""``strongticket export`` of GEM-MINER runs: the search's mask on the random weights is a strong ticket, also
when the run fine-tuned it afterwards; the fine-tuned network is refused as one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from strongticket.cli.app import main
from strongticket.errors import InputError
from strongticket.ticket import Ticket
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig, derive_seed
from strongticket.train.data import load_dataset
from strongticket.train.export import run_to_ticket
from strongticket.train.rundir import RunDir
from strongticket.train.run import train_run


def _cfg(finetune: bool) -> RunConfig:
    return RunConfig(data=DataConfig(dataset="digits", batch_size=64, train_subset=256, test_subset=128),
                     model=ModelConfig(model="lenet300100", width=0.25),
                     optim=OptimConfig(epochs=3, optimizer="adam", lr=0.01),
                     prune=PruneConfig(method="gem-miner", density=0.3, gem_period=1, gem_finetune=finetune),
                     seed=5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gem-export")
    out = {"finetuned": base / "finetuned", "search-only": base / "search-only"}
    train_run(_cfg(True), out["finetuned"], device="cpu")
    train_run(_cfg(False), out["search-only"], device="cpu")
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def _test_split(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    d = load_dataset("digits").subset(cfg.data.train_subset, cfg.data.test_subset,
                                      seed=derive_seed(cfg.seed, "subset"))
    return d.test_x, d.test_y


@pytest.mark.parametrize("which", ["finetuned", "search-only"])
def test_the_ticket_is_the_search_mask_on_the_random_weights_bit_for_bit(runs: dict[str, Path], which: str) -> None:
    run = runs[which]
    ticket = run_to_ticket(run)
    summary = json.loads((run / "summary.json").read_text())
    names = ticket.provenance["names"]
    run_masks = load_file(str(run / "mask.safetensors"))
    search = RunDir(run).load_checkpoint("search")[0]  # the weights of the search: never trained
    state = ticket.state_dict()
    for spec_name, key in names.items():
        m = ticket.masks[spec_name]
        assert torch.equal(m, run_masks[key]) if key in run_masks else bool(m.all())
        # the ticket's weights are regenerated from the seed; on every kept entry they are the search's, bit for bit
        assert torch.equal(state[spec_name][m], search[f"net.{key}"][m])
    assert ticket.seed == 5 and ticket.distribution.name == "signed_constant"
    assert ticket.provenance["kind"] == "gem-miner" and ticket.provenance["ticket_phase"] == "search"
    assert ticket.num_kept - sum(int(m.numel()) for k, m in ticket.masks.items() if k.endswith("bias")) == \
        summary["kept"]
    # the recorded accuracy is the strong ticket's, and the ticket computes it
    assert ticket.provenance["test_accuracy"] == summary["strong_ticket_test_accuracy"]
    x, y = _test_split(_cfg(which == "finetuned"))
    with torch.no_grad():
        acc = (ticket.to_module()(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(summary["strong_ticket_test_accuracy"], abs=1e-9)


def test_the_finetuned_weights_are_not_what_is_exported(runs: dict[str, Path]) -> None:
    run = runs["finetuned"]
    ticket = run_to_ticket(run)
    tuned = load_file(str(run / "model.safetensors"))
    state = ticket.state_dict()
    differ = [s for s, k in ticket.provenance["names"].items()
              if k.endswith("weight") and not torch.equal(state[s][ticket.masks[s]], tuned[k][ticket.masks[s]])]
    assert differ  # the fine-tuning moved the kept weights; the ticket keeps the random ones
    assert ticket.provenance["finetuned_test_accuracy"] == json.loads((run / "summary.json").read_text())[
        "finetuned_test_accuracy"]


def test_the_finetuned_variant_is_refused_in_one_line(runs: dict[str, Path]) -> None:
    with pytest.raises(InputError, match=r"the fine-tuned gem-miner network is not a strong ticket \(its weights "
                                         r"were trained") as exc:
        run_to_ticket(runs["finetuned"], "finetuned")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="has no fine-tuned network"):
        run_to_ticket(runs["search-only"], "finetuned")
    with pytest.raises(InputError, match=r"^--variant must be one of strong, finetuned, got 'tuned'$"):
        run_to_ticket(runs["search-only"], "tuned")


def test_search_weights_that_are_not_the_regenerated_ones_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["finetuned"], tmp_path)
    rd = RunDir(run)
    tensors, state = rd.load_checkpoint("search")
    m = load_file(str(run / "mask.safetensors"))["3.weight"]
    w = tensors["net.3.weight"].clone()
    w[m] = w[m].nextafter(torch.tensor(10.0))  # one ulp off on the kept entries: only a bit-for-bit check sees it
    rd.save_checkpoint("search", {**tensors, "net.3.weight": w}, {k: v for k, v in state.items()
                                                                   if k not in ("tensors", "sha256")})
    with pytest.raises(InputError, match=r"checkpoint of phase 'search' .*'3.weight' has kept entries that differ "
                                         r"from the weights regenerated from seed 5"):
        run_to_ticket(run)


def test_a_finetuned_run_without_its_search_checkpoint_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    run = _copy(runs["finetuned"], tmp_path)
    shutil.rmtree(run / "checkpoints" / "search")
    with pytest.raises(InputError, match="no final checkpoint of phase 'search', the only record of its random "
                                         "weights"):
        run_to_ticket(run)


def test_cli_exports_the_strong_ticket_and_refuses_the_finetuned_variant(runs: dict[str, Path], tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["export", str(runs["finetuned"]), "--out", str(tmp_path / "t"), "--json"])
    assert done.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    summary = json.loads((runs["finetuned"] / "summary.json").read_text())
    assert out["test_accuracy"] == summary["strong_ticket_test_accuracy"] != summary["test_accuracy"]
    assert Ticket.load(tmp_path / "t").provenance["kind"] == "gem-miner"
    with pytest.raises(SystemExit) as done:
        main(["export", str(runs["finetuned"]), "--out", str(tmp_path / "u"), "--variant", "finetuned"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "is not a strong ticket" in err
    assert not (tmp_path / "u").exists()
