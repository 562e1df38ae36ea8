"""Datasets as tensors on the training device, with batching and augmentation done there.

Four datasets, by name (:func:`dataset_names`):

* ``digits``: scikit-learn's bundled ``load_digits`` (1 797 images, 1x8x8, pixels 0..16 scaled to [0, 1]),
  split 1 437 / 360 by a fixed seeded permutation. Needs no files.
* ``mnist``, ``fashion-mnist``: the IDX gzip files (``train-images-idx3-ubyte.gz`` ...) in
  ``<data_dir>/mnist`` and ``<data_dir>/fashion-mnist``, checked against ``SHA256SUMS`` in the same folder.
* ``cifar10``: the official *binary* version (``data_batch_1.bin`` .. ``data_batch_5.bin``,
  ``test_batch.bin``: records of 1 label byte + 3 072 pixel bytes) in ``<data_dir>/cifar-10-batches-bin``
  (or ``<data_dir>/cifar10[/cifar-10-batches-bin]``), also checked against a ``SHA256SUMS`` there. The pickled
  "python version" is never read.

Nothing is ever downloaded: a missing or damaged file raises :class:`~strongticket.errors.DataError` saying
where it looked and how to point the loader elsewhere (``--data-dir`` or ``STRONGTICKET_DATA``).

Small datasets fit in memory on any device, so the trainer never uses a ``DataLoader``: an epoch is a seeded
permutation of indices (:func:`epoch_batches`), a batch is one gather, and augmentation (random crop with
padding, horizontal flip) is a batched tensor operation (:func:`augment_batch`).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from strongticket.errors import DataError, InputError
from strongticket.files import sha256_file

ENV_VAR = "STRONGTICKET_DATA"
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as tensors.

    Attributes
    ----------
    name : str
        Registry name (``digits``, ``mnist``, ...).
    train_x, test_x : torch.Tensor
        ``(N, C, H, W)`` float32 images in [0, 1].
    train_y, test_y : torch.Tensor
        ``(N,)`` int64 labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes.
    input_shape : tuple of int
        ``(C, H, W)``.
    augment : str
        The dataset's standard training augmentation: ``"none"`` or ``"flip_crop"`` (4-pixel padded random
        crop and horizontal flip, the CIFAR convention).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    augment: str = "none"

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.train_x.device

    def to(self, device: str | torch.device) -> Dataset:
        """Return the same dataset with every tensor on ``device``."""
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device))

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
        """Return a seeded random subset of ``n_train`` training and ``n_test`` test examples (None: all)."""
        g = torch.Generator().manual_seed(seed)

        def pick(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
            if n is None or n >= len(y):
                return x, y
            if n < 1:
                raise InputError(f"subset size must be >= 1, got {n}")
            idx = torch.randperm(len(y), generator=g)[:n].sort().values.to(y.device)
            return x[idx], y[idx]

        tx, ty = pick(self.train_x, self.train_y, n_train)
        vx, vy = pick(self.test_x, self.test_y, n_test)
        return replace(self, train_x=tx, train_y=ty, test_x=vx, test_y=vy)


@dataclass(frozen=True)
class DatasetEntry:
    """A registry entry: the loader ``fn(data_dir) -> Dataset`` and whether it reads files."""

    name: str
    loader: Callable[[Path | None], Dataset]
    needs_files: bool
    description: str


# ---------------------------------------------------------------------------------------------- paths


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """Return the data directory: ``data_dir`` if given, else ``$STRONGTICKET_DATA``; otherwise a DataError."""
    if data_dir is not None:
        path = Path(data_dir)
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    else:
        raise DataError(f"no data directory given: pass --data-dir DIR (or data_dir=...) or set {ENV_VAR}=DIR, "
                        "where DIR holds mnist/, fashion-mnist/ or cifar-10-batches-bin/ (nothing is downloaded)")
    if not path.is_dir():
        raise DataError(f"data directory {str(path)!r} does not exist or is not a directory "
                        f"(pass --data-dir DIR or set {ENV_VAR}=DIR)")
    return path


_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify_checksums(folder: Path, names: list[str]) -> None:
    """Check each of ``names`` in ``folder`` against ``folder/SHA256SUMS`` (``sha256sum`` format).

    Raises
    ------
    DataError
        If ``SHA256SUMS`` or a file is missing, a file is not listed, or a digest differs.
    """
    sums_path = folder / "SHA256SUMS"
    hint = f"(create it with: cd {folder} && sha256sum {' '.join(names)} > SHA256SUMS)"
    if not sums_path.is_file():
        raise DataError(f"checksum file {str(sums_path)!r} is missing {hint}")
    expected: dict[str, str] = {}
    for line in sums_path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            expected[parts[1].lstrip("*")] = parts[0].lower()
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"dataset file {str(path)!r} is missing (nothing is downloaded; "
                            f"pass --data-dir DIR or set {ENV_VAR}=DIR)")
        if name not in expected:
            raise DataError(f"{name!r} is not listed in {str(sums_path)!r} {hint}")
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        digest = _VERIFIED.get(key) or sha256_file(path)
        if digest != expected[name]:
            raise DataError(f"dataset file {str(path)!r} is damaged: sha256 {digest[:16]}... does not match "
                            f"{expected[name][:16]}... in SHA256SUMS; replace the file")
        _VERIFIED[key] = digest


# ---------------------------------------------------------------------------------------------- readers


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip-compressed IDX file (big-endian header, uint8 data) as an ``(N, ...)`` uint8 array."""
    try:
        raw = gzip.open(path, "rb").read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as gzip: {exc}") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{str(path)!r} is not an IDX uint8 file (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise DataError(f"{str(path)!r} is truncated: header says {dims}, got {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def _to_dataset(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                num_classes: int, scale: float, augment: str = "none") -> Dataset:
    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.require(a, requirements=["C", "W"])).to(torch.float32).div_(scale)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64).copy())

    tx = images(train_x)
    return Dataset(name=name, train_x=tx, train_y=labels(train_y), test_x=images(test_x), test_y=labels(test_y),
                   num_classes=num_classes, input_shape=tuple(tx.shape[1:]), augment=augment)


def _load_digits(_: Path | None) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.reshape(-1, 1, 8, 8)
    y = bunch.target
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y))
    test, train = np.sort(perm[:DIGITS_TEST_SIZE]), np.sort(perm[DIGITS_TEST_SIZE:])
    return _to_dataset("digits", x[train], y[train], x[test], y[test], 10, 16.0)


IDX_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def _idx_loader(name: str) -> Callable[[Path | None], Dataset]:
    def load(data_dir: Path | None) -> Dataset:
        folder = resolve_data_dir(data_dir) / name
        if not folder.is_dir():
            raise DataError(f"{name} folder {str(folder)!r} not found; expected {', '.join(IDX_FILES)} and "
                            f"SHA256SUMS there (pass --data-dir DIR or set {ENV_VAR}=DIR)")
        verify_checksums(folder, IDX_FILES)
        tx, ty, vx, vy = (read_idx(folder / f) for f in IDX_FILES)
        if tx.ndim != 3 or vx.ndim != 3 or len(tx) != len(ty) or len(vx) != len(vy):
            raise DataError(f"{name} files in {str(folder)!r} have inconsistent shapes: "
                            f"train {tx.shape}/{ty.shape}, test {vx.shape}/{vy.shape}")
        return _to_dataset(name, tx[:, None], ty, vx[:, None], vy, 10, 255.0)

    return load


CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]
CIFAR_RECORD = 1 + 3 * 32 * 32


def _cifar_folder(root: Path) -> Path:
    for cand in (root / "cifar-10-batches-bin", root / "cifar10" / "cifar-10-batches-bin", root / "cifar10", root):
        if (cand / CIFAR_TEST[0]).is_file() or (cand / CIFAR_TRAIN[0]).is_file():
            return cand
    raise DataError(f"CIFAR-10 binary files not found under {str(root)!r}: expected "
                    f"cifar-10-batches-bin/{{data_batch_1..5,test_batch}}.bin with a SHA256SUMS file "
                    f"(the official binary version; pass --data-dir DIR or set {ENV_VAR}=DIR)")


def read_cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` uint8 labels."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DataError(f"{str(path)!r} is not a CIFAR-10 binary batch: {raw.size} bytes is not a positive "
                        f"multiple of the {CIFAR_RECORD}-byte record")
    rec = raw.reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0]
    if labels.max() >= 10:
        raise DataError(f"{str(path)!r} has label {int(labels.max())} >= 10: not a CIFAR-10 binary batch")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _load_cifar10(data_dir: Path | None) -> Dataset:
    folder = _cifar_folder(resolve_data_dir(data_dir))
    verify_checksums(folder, CIFAR_TRAIN + CIFAR_TEST)
    train = [read_cifar_bin(folder / f) for f in CIFAR_TRAIN]
    vx, vy = read_cifar_bin(folder / CIFAR_TEST[0])
    return _to_dataset("cifar10", np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                       vx, vy, 10, 255.0, augment="flip_crop")


_REGISTRY: dict[str, DatasetEntry] = {e.name: e for e in [
    DatasetEntry("digits", _load_digits, False, "scikit-learn digits, 1x8x8, 1437/360, embedded"),
    DatasetEntry("mnist", _idx_loader("mnist"), True, "MNIST, 1x28x28, 60000/10000, IDX gzip"),
    DatasetEntry("fashion-mnist", _idx_loader("fashion-mnist"), True, "Fashion-MNIST, 1x28x28, IDX gzip"),
    DatasetEntry("cifar10", _load_cifar10, True, "CIFAR-10, 3x32x32, 50000/10000, official binary batches"),
]}


def dataset_names() -> list[str]:
    """Return the names of the known datasets."""
    return list(_REGISTRY)


def dataset_entry(name: str) -> DatasetEntry:
    """Return the registry entry ``name``; an unknown name raises :class:`InputError` listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; valid datasets: {', '.join(_REGISTRY)}") from None


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
                 ) -> Dataset:
    """Load dataset ``name`` (see :func:`dataset_names`) onto ``device``.

    Parameters
    ----------
    name : str
        ``digits``, ``mnist``, ``fashion-mnist`` or ``cifar10``.
    data_dir : path or None
        Folder holding ``mnist/``, ``fashion-mnist/``, ``cifar-10-batches-bin/``; None reads
        ``$STRONGTICKET_DATA``. Ignored by ``digits``.
    device : str or torch.device
        Where the tensors are put.

    Returns
    -------
    Dataset
        Images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)`` int64.

    Raises
    ------
    InputError
        Unknown name.
    DataError
        Missing or damaged files, or no data directory for a dataset that needs one.
    """
    entry = dataset_entry(name)
    ds = entry.loader(Path(data_dir) if data_dir is not None else None)
    return ds.to(device) if torch.device(device) != ds.device else ds


# ---------------------------------------------------------------------------------------------- batching


def epoch_batches(n: int, batch_size: int, generator: torch.Generator | None, *, drop_last: bool = False,
                  device: str | torch.device = "cpu", rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
    """Yield index tensors ``(B,)`` covering one epoch of ``n`` examples.

    The permutation is drawn on the CPU from ``generator`` (so the order is the same on every device) and
    moved to ``device`` once; ``generator=None`` gives the sequential order (evaluation). With
    ``world_size > 1`` each rank takes an interleaved, equal-size share of every global batch of
    ``batch_size * world_size`` indices (the same permutation on every rank).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(device)
    step = batch_size * world_size
    stop = (n // step) * step if drop_last else n
    for start in range(0, stop, step):
        chunk = order[start:start + step]
        if world_size > 1:
            per = len(chunk) // world_size
            if per == 0:
                return
            chunk = chunk[: per * world_size][rank::world_size]
        yield chunk


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Return an augmented copy of the image batch ``x (B, C, H, W)``, drawn from ``generator`` (CPU).

    ``"none"`` returns ``x``; ``"flip_crop"`` zero-pads by ``padding`` pixels, takes a random ``H x W`` crop
    and flips half the images horizontally, all as one gather on ``x``'s device.
    """
    if kind == "none":
        return x
    if kind != "flip_crop":
        raise InputError(f"unknown augmentation {kind!r}; valid: none, flip_crop")
    b, c, h, w = x.shape
    offs = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = offs[0, :, None] + torch.arange(h, device=x.device)          # (B, H)
    cols = torch.arange(w, device=x.device).expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + offs[1, :, None]  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
