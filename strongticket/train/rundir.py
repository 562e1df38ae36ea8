"""Run directories: the on-disk record of a training run, written atomically and resumable.

Layout::

    run/
      config.json                  complete RunConfig + versions + device (+ format version)
      metrics.jsonl                one JSON object per line (evaluations, pruning events)
      checkpoints/<phase>/state.json          step, epoch, optimiser scalars, callback states, metrics line
                                               count, the name and sha256 of the tensor file, done flag
      checkpoints/<phase>/ckpt-<step>.safetensors   network, masks, scores, optimiser tensors
      checkpoints/rewind.safetensors          IMP with rewinding: weights at the rewind step
      mask.safetensors             final masks (bool, keyed by state_dict name) — the constructions' format
      model.safetensors            final weights with masks applied (a plain dense state_dict)
      summary.json                 final accuracy, density, sparsity, params, wall time, device

Every file is written to a temporary name and renamed; a checkpoint's tensors are written under a new name
before ``state.json`` points at them, so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from strongticket.errors import InputError, StrongTicketError
from strongticket.files import (
    check_can_create,
    check_writable_directory,
    read_json_object,
    save_tensors_atomic,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)
from strongticket.train.config import RunConfig, config_diff

FORMAT_VERSION = 1


class CheckpointError(StrongTicketError):
    """A run directory's checkpoint is damaged, missing or inconsistent with its state file."""


def _check_new(path: Path) -> None:
    check_can_create(path, what="--out")
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        raise InputError(f"--out {str(path)!r} is a file, not a run directory; choose another --out")
    if any(path.iterdir()):
        raise InputError(f"--out {str(path)!r} exists and is not a run directory (no config.json); "
                         "choose another --out")


# The fields of state.json that resuming reads as numbers, flags or tables, with their JSON types.
_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "step": (int,), "epoch": (int,), "done": (bool,), "metrics_lines": (int,), "tensors": (str,),
    "sha256": (str,), "optimizer_groups": (list,),
}


class RunDir:
    """A run directory at ``path`` (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # config ---------------------------------------------------------------------------------------
    def open(self, config: RunConfig, *, meta: dict[str, Any], overwrite: bool = False) -> bool:
        """Create the run directory for ``config`` or reopen it for resuming.

        Returns True when an existing run of the same configuration is resumed. Raises
        :class:`InputError` if the directory holds a run of another configuration (naming the fields that
        differ), or if the path is a file or a non-empty directory that is not a run directory (never
        deleted, even with ``overwrite``); :class:`~strongticket.errors.OutputError` if it cannot be created.
        """
        cfg_path = self.path / "config.json"
        new = {"format": FORMAT_VERSION, "config": config.to_dict(), **meta}
        self.check_writable(overwrite=overwrite)
        if overwrite and self.path.is_dir():
            self._clear()
        if cfg_path.is_file():
            old = read_json_object(cfg_path, CheckpointError)
            diff = config_diff(old.get("config", {}), new["config"])
            if diff:
                raise InputError(f"run directory {str(self.path)!r} holds a run with another configuration; "
                                 f"differing fields: {'; '.join(diff)} (use another --out, or --overwrite)")
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg_path, new, what="run config")
        return False

    def check_writable(self, *, overwrite: bool) -> None:
        """Check, before any work, that the run may be written (or resumed) at ``path``: an existing run
        directory (``config.json``), an empty directory, or a new path whose parents can be created."""
        if (self.path / "config.json").is_file() and not self.path.is_symlink() and not overwrite:
            return  # resume
        if overwrite:
            check_writable_directory(self.path, overwrite=True, marker="config.json", what="--out")
        else:
            _check_new(self.path)

    def _clear(self) -> None:
        import shutil

        if (self.path / "config.json").is_file():
            shutil.rmtree(self.path)

    # metrics --------------------------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def read_metrics(self) -> list[dict[str, Any]]:
        """Return the metric lines written so far (a torn last line, from a kill mid-write, is dropped)."""
        if not self.metrics_path.is_file():
            return []
        out = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return out

    def clean_metrics(self) -> int:
        """Drop a torn last line (a kill mid-write) from ``metrics.jsonl``; return the number of whole lines."""
        if not self.metrics_path.is_file():
            return 0
        lines = self.read_metrics()
        text = "".join(json.dumps(x) + "\n" for x in lines)
        if self.metrics_path.read_bytes() != text.encode():
            self.truncate_metrics(len(lines))
        return len(lines)

    def truncate_metrics(self, n: int) -> None:
        """Keep only the first ``n`` metric lines (atomically)."""
        lines = self.read_metrics()[:n]
        write_bytes_atomic(self.metrics_path, "".join(json.dumps(x) + "\n" for x in lines).encode())

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to ``metrics.jsonl`` and flush it to disk."""
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(record, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # checkpoints ----------------------------------------------------------------------------------
    def _phase_dir(self, phase: str) -> Path:
        return self.path / "checkpoints" / phase

    def save_checkpoint(self, phase: str, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write ``tensors`` then ``state.json`` pointing at them; remove the previous tensor file."""
        d = self._phase_dir(phase)
        name = f"ckpt-{state['step']:09d}.safetensors"
        save_tensors_atomic(d / name, {k: v.detach().cpu() for k, v in tensors.items()})
        old = self.read_state(phase)
        write_json_atomic(d / "state.json", {**state, "tensors": name, "sha256": sha256_file(d / name)})
        if old is not None and old.get("tensors") not in (None, name):
            (d / old["tensors"]).unlink(missing_ok=True)

    def read_state(self, phase: str) -> dict[str, Any] | None:
        """Return the phase's ``state.json``, or None if the phase has no checkpoint yet."""
        p = self._phase_dir(phase) / "state.json"
        if not p.is_file():
            return None
        try:
            state = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"checkpoint state {str(p)!r} is damaged ({exc}); pass --overwrite to start "
                                  "over") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"checkpoint state {str(p)!r} is damaged: it holds a {type(state).__name__}, "
                                  "not an object; pass --overwrite to start over")
        for key, kinds in _STATE_FIELDS.items():
            value = state.get(key)
            if not isinstance(value, kinds) or isinstance(value, bool) is not (kinds == (bool,)):
                names = " or ".join(k.__name__ for k in kinds)
                raise CheckpointError(f"checkpoint state {str(p)!r} is damaged: {key!r} must be {names}, got "
                                      f"{value!r}; pass --overwrite to start over")
        return state

    def load_checkpoint(self, phase: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """Return ``(tensors, state)`` of the phase's last checkpoint, None if none; damage is a CheckpointError."""
        state = self.read_state(phase)
        if state is None:
            return None
        p = self._phase_dir(phase) / state.get("tensors", "")
        if not p.is_file():
            raise CheckpointError(f"checkpoint {str(p)!r} named by state.json is missing; pass --overwrite to "
                                  "start over")
        digest = sha256_file(p)
        if digest != state.get("sha256"):
            raise CheckpointError(f"checkpoint {str(p)!r} is damaged: sha256 {digest[:16]}... differs from "
                                  f"{str(state.get('sha256'))[:16]}... in state.json; pass --overwrite to start over")
        try:
            return load_file(str(p)), state
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read checkpoint {str(p)!r}: {exc}") from None

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
                     ) -> Path:
        """Save ``tensors`` (moved to CPU) to ``<run>/<name>`` atomically and return the path."""
        p = self.path / name
        save_tensors_atomic(p, {k: v.detach().cpu() for k, v in tensors.items()}, metadata)
        return p

    def load_tensors(self, name: str) -> dict[str, torch.Tensor] | None:
        """Load ``<run>/<name>`` if it exists (damage is a CheckpointError)."""
        p = self.path / name
        if not p.is_file():
            return None
        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {str(p)!r}: {exc}; pass --overwrite to start over") from None

    def file_record(self, name: str) -> dict[str, Any]:
        """``{"bytes", "sha256"}`` of ``<run>/<name>``, as ``summary.json`` records every file the run wrote."""
        p = self.path / name
        return {"bytes": p.stat().st_size, "sha256": sha256_file(p)}

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` (the mark of a finished run)."""
        write_json_atomic(self.path / "summary.json", summary, what="run summary")

    def read_summary(self) -> dict[str, Any] | None:
        """Return ``summary.json`` if the run finished, else None (damage is a CheckpointError)."""
        p = self.path / "summary.json"
        if not p.is_file():
            return None
        return read_json_object(p, CheckpointError)

    def verify_files(self, summary: dict[str, Any]) -> None:
        """Check every file ``summary["files"]`` records against its size and sha256.

        Raises
        ------
        CheckpointError
            One line naming the first missing or changed file.
        """
        files = summary.get("files")
        if not isinstance(files, dict):
            return  # a run written before files were recorded: nothing to compare with
        for name, rec in files.items():
            p = self.path / name
            if not p.is_file():
                raise CheckpointError(f"{name} of the finished run {str(self.path)!r} is missing; "
                                      "pass --overwrite to train it again")
            size = p.stat().st_size
            if size != rec.get("bytes"):
                raise CheckpointError(f"{name} of the finished run {str(self.path)!r} is damaged: {size} bytes, "
                                      f"summary.json records {rec.get('bytes')}; pass --overwrite to train it again")
            digest = sha256_file(p)
            if digest != rec.get("sha256"):
                raise CheckpointError(f"{name} of the finished run {str(self.path)!r} is damaged: sha256 "
                                      f"{digest[:16]}... differs from {str(rec.get('sha256'))[:16]}... in "
                                      "summary.json; pass --overwrite to train it again")
