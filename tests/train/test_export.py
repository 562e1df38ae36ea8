"""Tests of :mod:`strongticket.train.export` and ``strongticket export``: edge-popup runs are strong tickets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import torch
from safetensors.torch import load_file, save_file

from strongticket.cli.app import main
from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.schemas import load_schema
from strongticket.ticket import Ticket
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.data import load_dataset
from strongticket.train.export import run_to_ticket
from strongticket.train.run import train_run


def _cfg(method: str, model: str = "lenet300100", train_subset: int = 128) -> RunConfig:
    ep = method == "edge-popup"
    return RunConfig(data=DataConfig(dataset="digits", batch_size=64, train_subset=train_subset, test_subset=64),
                     model=ModelConfig(model=model, width=0.25, init="signed_constant" if ep else "default"),
                     optim=OptimConfig(epochs=1, lr=0.1),
                     prune=PruneConfig(method=method, density=0.5, scope="layerwise" if ep else "global"),
                     seed=7)


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "edge"
    train_run(_cfg("edge-popup"), out, device="cpu")
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "copy"))


def test_exported_ticket_computes_the_trained_masked_model(edge_run: Path, tmp_path: Path) -> None:
    run_to_ticket(edge_run).save(tmp_path / "ticket")
    meta = json.loads((tmp_path / "ticket" / "ticket.json").read_text())
    jsonschema.validate(meta, load_schema("ticket"), cls=jsonschema.Draft202012Validator)
    ticket = Ticket.load(tmp_path / "ticket")
    trained = build_model("lenet300100", num_classes=10, in_channels=1, image_size=8, width=0.25, seed=0).eval()
    trained.load_state_dict(load_file(str(edge_run / "model.safetensors")))
    x = load_dataset("digits").test_x[:64]
    with torch.no_grad():
        assert torch.equal(ticket.to_module()(x), trained(x))


def test_kept_weights_are_the_regenerated_random_weights_bit_for_bit(edge_run: Path) -> None:
    ticket = run_to_ticket(edge_run)
    names = ticket.provenance["names"]
    assert names == {"layers.1.weight": "1.weight", "layers.1.bias": "1.bias", "layers.2.weight": "3.weight",
                     "layers.2.bias": "3.bias", "layers.3.weight": "5.weight", "layers.3.bias": "5.bias"}
    saved, run_masks = load_file(str(edge_run / "model.safetensors")), load_file(str(edge_run / "mask.safetensors"))
    state = ticket.state_dict()
    for spec_name, key in names.items():
        assert torch.equal(state[spec_name], saved[key])
        m = ticket.masks[spec_name]
        assert torch.equal(m, run_masks[key]) if key in run_masks else bool(m.all())
    assert ticket.seed == 7 and ticket.distribution.name == "signed_constant"
    assert ticket.provenance["kind"] == "edge-popup"


def test_missing_mask_file_is_a_clear_error(edge_run: Path, tmp_path: Path) -> None:
    run = _copy(edge_run, tmp_path)
    (run / "mask.safetensors").unlink()
    with pytest.raises(InputError, match="has no mask.safetensors"):
        run_to_ticket(run)


def test_weights_that_are_not_the_regenerated_ones_are_refused(edge_run: Path, tmp_path: Path) -> None:
    run = _copy(edge_run, tmp_path)
    saved = load_file(str(run / "model.safetensors"))
    m = load_file(str(run / "mask.safetensors"))["3.weight"]
    w = saved["3.weight"].clone()
    w[m] = w[m].nextafter(torch.tensor(10.0))  # one ulp off: only a bit-for-bit check sees it
    save_file({**saved, "3.weight": w}, str(run / "model.safetensors"))
    with pytest.raises(InputError, match=r"kept entries of '3.weight' differ from the weights regenerated"):
        run_to_ticket(run)


def test_unfinished_run_and_missing_directory_are_clear_errors(edge_run: Path, tmp_path: Path) -> None:
    run = _copy(edge_run, tmp_path)
    (run / "summary.json").unlink()
    with pytest.raises(InputError, match="has not finished"):
        run_to_ticket(run)
    with pytest.raises(InputError, match="does not exist"):
        run_to_ticket(tmp_path / "nowhere")
    (tmp_path / "a_file").write_text("not a run")
    with pytest.raises(InputError, match="'.*a_file' is a file, not a run directory"):
        run_to_ticket(tmp_path / "a_file")


def test_a_run_that_trains_weights_is_refused_naming_edge_popup(tmp_path: Path) -> None:
    train_run(_cfg("random"), tmp_path / "random", device="cpu")
    with pytest.raises(InputError, match="method 'random', which trains the weights.*only edge-popup"):
        run_to_ticket(tmp_path / "random")


def test_resnet_edge_popup_run_is_refused_naming_batchnorm(tmp_path: Path) -> None:
    s = train_run(_cfg("edge-popup", model="resnet20", train_subset=64), tmp_path / "resnet", device="cpu")
    assert "BatchNorm2d" in s["random_network"]["unsupported"]
    with pytest.raises(InputError, match="resnet20.*BatchNorm2d") as exc:
        run_to_ticket(tmp_path / "resnet")
    assert "\n" not in str(exc.value)


def test_cli_export_writes_a_loadable_ticket_and_reports_errors(edge_run: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["export", str(edge_run), "--out", str(tmp_path / "t"), "--json", "--seed", "7"])
    assert done.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == 7 and out["ticket_dir"] == str(tmp_path / "t")
    assert Ticket.load(tmp_path / "t").num_kept == out["kept"]
    with pytest.raises(SystemExit) as done:
        main(["export", str(edge_run), "--out", str(tmp_path / "u"), "--seed", "8"])
    assert done.value.code == 2 and "does not match the run's seed 7" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()


def test_verify_measures_an_exported_ticket_on_its_task(edge_run: Path, tmp_path: Path, capsys) -> None:
    run_to_ticket(edge_run).save(tmp_path / "ticket")
    try:
        main(["verify", str(tmp_path / "ticket"), "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["data"] == "digits" and report["kind"] == "edge-popup"
    trained = build_model("lenet300100", num_classes=10, in_channels=1, image_size=8, width=0.25, seed=0).eval()
    trained.load_state_dict(load_file(str(edge_run / "model.safetensors")))
    ds = load_dataset("digits")
    with torch.no_grad():
        expected = (trained(ds.test_x).argmax(1) == ds.test_y).sum().item() / len(ds.test_y)
    assert report["ticket_accuracy"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("victim_kind", ["directory", "file"])
def test_cli_export_overwrite_never_deletes_what_strongticket_did_not_write(
        edge_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], victim_kind: str) -> None:
    if victim_kind == "directory":
        victim = tmp_path / "out"
        (victim / "sub").mkdir(parents=True)
        (victim / "thesis.txt").write_text("three years of work")
        (victim / "sub" / "data.csv").write_text("a,b\n1,2\n")
        expected = "is a directory that strongticket did not write (no ticket.json); refusing to replace it"
    else:
        victim = tmp_path / "victim.npz"
        victim.write_bytes(b"PK\x03\x04 not ours")
        expected = "is a file, not a directory strongticket wrote; refusing to replace it"
    before = {str(p): p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()}
    with pytest.raises(SystemExit) as done:
        main(["export", str(edge_run), "--out", str(victim), "--overwrite"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.startswith(f"error: --out {str(victim)!r} {expected}") and err.count("\n") == 1
    assert {str(p): p.read_bytes() for p in [victim, *victim.rglob("*")] if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [victim.name]


def test_cli_export_overwrite_replaces_a_ticket_directory(edge_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    exported = run_to_ticket(edge_run)
    Ticket(exported.spec, exported.distribution, 0, exported.masks).save(out)
    assert Ticket.load(out).seed == 0
    with pytest.raises(SystemExit) as done:
        main(["export", str(edge_run), "--out", str(out), "--overwrite"])
    assert done.value.code in (0, None)
    assert Ticket.load(out).seed == 7 and Ticket.load(out).provenance["kind"] == "edge-popup"


def test_cli_export_checks_out_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "ticket"
    with pytest.raises(SystemExit) as done:
        main(["export", str(tmp_path / "no-such-run"), "--out", str(out)])  # the run is read only after the check
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot write --out {str(out)!r}: {str(tmp_path / 'notes.txt')!r} is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_export_help_says_seed_only_checks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "A check only, nothing is drawn: fail unless the run's seed" in text
    assert "Replace --out if it is a ticket directory (never anything else)" in text
