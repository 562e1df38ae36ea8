"""files: --overwrite replaces only what strongticket wrote; write errors are one line; modes follow the umask."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from strongticket.errors import InputError, OutputError
from strongticket.files import (
    atomic_directory,
    check_writable_directory,
    save_arrays_atomic,
    save_tensors_atomic,
    write_bytes_atomic,
    write_json_atomic,
)
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


# ----- OS errors are one line naming the destination, never a temporary name ---------------------------
@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """Files of this process cannot grow past ``limit`` bytes (EFBIG): a full disk without mounting one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills us instead of failing write
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _assert_one_line_naming(exc: BaseException, dest: Path) -> None:
    text = str(exc)
    assert "\n" not in text and text.startswith("cannot write ") and repr(str(dest)) in text
    assert ".tmp" not in text, text  # our temporary names are no business of the user


WRITERS = {
    "bytes": lambda dest: write_bytes_atomic(dest, b"x" * 10_000),
    "json": lambda dest: write_json_atomic(dest, {"x": "y" * 10_000}),
    "tensors": lambda dest: save_tensors_atomic(dest, {"w": torch.zeros(10_000)}),
    "arrays": lambda dest: save_arrays_atomic(dest, {"w": np.zeros(10_000)}),
    "ticket": lambda dest: _ticket().save(dest),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_is_one_line_naming_the_destination(tmp_path: Path, writer: str) -> None:
    dest = tmp_path / "out"
    with _file_size_limit(100), pytest.raises(OutputError, match="File too large") as info:
        WRITERS[writer](dest)
    _assert_one_line_naming(info.value, dest)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temporary file left


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_parent_that_is_a_file_is_one_line_naming_it(tmp_path: Path, writer: str) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    dest = tmp_path / "notes.txt" / "sub" / "out"
    with pytest.raises(OutputError, match=r"'.*notes.txt' is a file, not a directory") as info:
        WRITERS[writer](dest)
    _assert_one_line_naming(info.value, dest)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_read_only_directory_is_one_line_naming_the_destination(tmp_path: Path, writer: str) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only mode does not stop writes (the parent-is-a-file test covers it)")
        with pytest.raises(OutputError, match="permission|Permission") as info:
            WRITERS[writer](ro / "out")
        _assert_one_line_naming(info.value, ro / "out")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_the_directory_check_names_a_parent_that_is_a_file_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("mine")
    with pytest.raises(OutputError, match=r"cannot write --out '.*f/t': '.*f' is a file, not a directory"):
        check_ticket_destination(tmp_path / "f" / "t", overwrite=True, what="--out")


STAGES = [("replace", errno.EROFS), ("fsync", errno.ENOSPC), ("mkstemp", errno.EACCES)]


@pytest.mark.parametrize("writer, call, code", [(w, c, e) for w in sorted(WRITERS) for c, e in STAGES]
                         + [("ticket", "mkdtemp", errno.EACCES)])
def test_every_stage_of_a_write_fails_as_one_line_without_temporary_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, call: str, code: int) -> None:
    import strongticket.files as files

    def fail(*args: object, **kwargs: object) -> None:
        # the OS names the temporary file it was given: that name must not reach the user
        raise OSError(code, os.strerror(code), str(tmp_path / ".out.k3j2h1.tmp"))

    target = files.tempfile if call in ("mkstemp", "mkdtemp") else files.os
    monkeypatch.setattr(target, call, fail)
    dest = tmp_path / "out"
    with pytest.raises(OutputError, match=os.strerror(code)) as info:
        WRITERS[writer](dest)
    _assert_one_line_naming(info.value, dest)
    monkeypatch.undo()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


# ----- modes follow the umask; renames are made durable ----------------------------------------------
@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_written_files_and_directories_follow_the_umask(tmp_path: Path, mask: int, file_mode: int,
                                                        dir_mode: int) -> None:
    with _umask(mask):
        for writer in sorted(WRITERS):
            WRITERS[writer](tmp_path / writer)
    for writer in sorted(WRITERS):
        dest = tmp_path / writer
        if writer == "ticket":
            assert stat.S_IMODE(dest.stat().st_mode) == dir_mode
            inside = {p.name: stat.S_IMODE(p.stat().st_mode) for p in dest.iterdir()}
            assert inside and all(m == file_mode for m in inside.values()), inside
        else:
            assert stat.S_IMODE(dest.stat().st_mode) == file_mode, writer


def test_replacing_a_file_gives_it_the_umask_mode_not_the_old_one(tmp_path: Path) -> None:
    dest = tmp_path / "a.json"
    dest.write_text("{}")
    dest.chmod(0o600)
    with _umask(0o022):
        write_json_atomic(dest, {"a": 1})
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_the_directory_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   writer: str) -> None:
    import strongticket.files as files

    events: list[str] = []
    real_replace, real_fsync = files.os.replace, files.os.fsync

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        events.append(f"rename {Path(dst).name}")

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            events.append(f"fsync dir {'tmp_path' if st.st_ino == tmp_path.stat().st_ino else st.st_ino}")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "replace", replace)
    monkeypatch.setattr(files.os, "fsync", fsync)
    WRITERS[writer](tmp_path / "out")
    monkeypatch.undo()
    last = events.index("rename out")
    assert events[last + 1] == "fsync dir tmp_path", events


def test_a_file_system_that_cannot_fsync_a_directory_is_not_an_error(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import strongticket.files as files

    real_fsync = files.os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    _ticket().save(tmp_path / "t")
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    monkeypatch.undo()
    assert Ticket.load(tmp_path / "t").seed == 0 and (tmp_path / "a.json").is_file()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_the_umask_is_read_without_proc_too(monkeypatch: pytest.MonkeyPatch, mask: int) -> None:
    import strongticket.files as files

    def no_proc(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(files, "open", no_proc, raising=False)
    with _umask(mask):
        assert files._umask() == mask
        assert os.umask(mask) == mask  # and it is left as it was


def test_has_format_is_true_only_for_a_json_object_of_that_format(tmp_path: Path) -> None:
    from strongticket.files import has_format

    cases = {"ours.json": '{"format": "strongticket-x"}', "other.json": '{"format": "someone-else"}',
             "list.json": '["strongticket-x"]', "broken.json": '{"format": ', "binary.json": b"\xff\xfe"}
    for name, text in cases.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp_path / "dir.json").mkdir()
    assert has_format(tmp_path / "ours.json", "strongticket-x")
    assert not any(has_format(tmp_path / n, "strongticket-x")
                   for n in ("other.json", "list.json", "broken.json", "binary.json", "dir.json", "missing.json"))
