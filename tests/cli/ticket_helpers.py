"""Helpers of the construct/verify/demo CLI tests: run the console entry point, a small checkpoint, a snapshot."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from safetensors.torch import save_file

from strongticket.cli.app import main

#: A LeNet-300-100 shrunk to 4 inputs (2x2 image), 6-3 hidden units and 3 classes: constructs in a second.
ZOO = ["--model", "lenet300100", "--num-classes", "3", "--image-size", "2", "--width", "0.02"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``strongticket ARGV`` through the console entry point: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def write_checkpoint(path: Path, scale: float = 0.3) -> Path:
    """The weights of the :data:`ZOO` model (seed 0) times ``scale``, as a safetensors checkpoint at ``path``."""
    from strongticket.nets.zoo import build_model

    m = build_model("lenet300100", num_classes=3, in_channels=1, image_size=2, width=0.02, bias=False, seed=0)
    save_file({k: v * scale for k, v in m.state_dict().items()}, str(path))
    return path


def save_small_ticket(path: Path) -> Path:
    """A pensia ticket of the :data:`ZOO` model (seed 0, weights times 0.3), saved at ``path`` (a second)."""
    import torch

    from strongticket.construct import pensia
    from strongticket.nets.zoo import build_model

    target = build_model("lenet300100", num_classes=3, in_channels=1, image_size=2, width=0.02, bias=False, seed=0)
    with torch.no_grad():
        for p in target.parameters():
            p.mul_(0.3)
    pensia.construct(target, per_weight_eps=0.05, samples=6, strict=False).save(path)
    return path


def snapshot(path: Path) -> dict[str, str] | None:
    """Everything at ``path``: relative name -> sha256 of each file (``"dir"`` for directories); None if missing."""
    if not path.exists():
        return None
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))}
