"""files: --overwrite replaces only what strongticket wrote; write errors are one line; modes follow the umask."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from strongticket.errors import InputError
from strongticket.files import atomic_directory, check_writable_directory
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import Linear, NetSpec
from strongticket.ticket import TICKET_JSON, Ticket, check_ticket_destination

SPEC = NetSpec((Linear(4, 3, activation="relu"), Linear(3, 2)))


def _ticket(seed: int = 0) -> Ticket:
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in SPEC.parameter_shapes().items()}
    return Ticket(SPEC, WeightDistribution.uniform(), seed, masks, {"method": "test"})


def _user_directory(path: Path) -> Path:
    """A directory of the user's own files, which no --overwrite may delete."""
    (path / "sub").mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work")
    (path / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ----- overwrite replaces only what the project wrote ------------------------------------------------
@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_never_deletes_a_directory_strongticket_did_not_write(tmp_path: Path, overwrite: bool) -> None:
    victim = _user_directory(tmp_path / "out")
    before = _snapshot(victim)
    with pytest.raises(InputError, match=r"did not write \(no ticket.json\); refusing") as info:
        _ticket().save(victim, overwrite=overwrite, what="--out")
    assert "\n" not in str(info.value) and "--out" in str(info.value)
    assert _snapshot(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary directory left behind


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_never_deletes_a_plain_file(tmp_path: Path, overwrite: bool) -> None:
    victim = tmp_path / "victim.npz"
    victim.write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(InputError, match="is a file, not a directory"):
        _ticket().save(victim, overwrite=overwrite)
    assert victim.read_bytes() == b"PK\x03\x04 not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.npz"]


def test_a_foreign_ticket_json_does_not_make_a_directory_ours(tmp_path: Path) -> None:
    victim = tmp_path / "jira"
    victim.mkdir()
    (victim / TICKET_JSON).write_text('{"id": "PROJ-12", "summary": "a bug tracker export"}')
    (victim / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="did not write"):
        _ticket().save(victim, overwrite=True)
    assert (victim / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_ticket_directory_whole(tmp_path: Path) -> None:
    out = tmp_path / "t"
    _ticket(seed=1).save(out, include_weights=True)
    with pytest.raises(InputError, match="already exists .*pass --overwrite"):
        _ticket(seed=2).save(out)
    assert Ticket.load(out).seed == 1
    _ticket(seed=2).save(out, overwrite=True)
    assert Ticket.load(out).seed == 2
    assert not (out / "weights.safetensors").exists()  # replaced whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_missing_or_empty_destination_is_fine(tmp_path: Path) -> None:
    assert check_ticket_destination(tmp_path / "new" / "t", overwrite=False) is False
    (tmp_path / "empty").mkdir()
    assert check_ticket_destination(tmp_path / "empty", overwrite=False) is True
    _ticket().save(tmp_path / "empty")
    assert Ticket.load(tmp_path / "empty").seed == 0


def test_the_check_runs_before_the_body_writes_anything(tmp_path: Path) -> None:
    victim = _user_directory(tmp_path / "out")
    ran = []
    with pytest.raises(InputError):
        with atomic_directory(victim, overwrite=True, marker="config.json", what="--out"):
            ran.append(True)
    assert not ran


def test_a_marked_directory_of_another_kind_is_recognised_by_its_own_marker(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert check_writable_directory(run, overwrite=True, marker="config.json", what="--out") is True
    with pytest.raises(InputError, match="no ticket.json"):
        check_ticket_destination(run, overwrite=True, what="--out")
