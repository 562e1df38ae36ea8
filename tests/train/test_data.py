"""Tests of the dataset loaders: shapes, scaling, checksums, clear errors, batching and augmentation."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from strongticket.errors import DataError, InputError
from strongticket.train.data import (
    augment_batch,
    dataset_names,
    epoch_batches,
    load_dataset,
    read_cifar_bin,
)


def test_digits_needs_no_files_and_is_scaled() -> None:
    ds = load_dataset("digits")
    assert ds.train_x.shape == (1437, 1, 8, 8) and ds.test_x.shape == (360, 1, 8, 8)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert 0.0 <= float(ds.train_x.min()) and float(ds.train_x.max()) == 1.0
    assert ds.num_classes == 10 and ds.input_shape == (1, 8, 8)


def test_digits_split_is_fixed() -> None:
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.train_x, b.train_x)


def test_mnist_loads_from_shared_data(shared_data_dir: Path) -> None:
    ds = load_dataset("mnist", shared_data_dir)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_y[:5].tolist() == [5, 0, 4, 1, 9]
    assert float(ds.train_x.max()) == 1.0


def test_fashion_mnist_loads_from_env(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGTICKET_DATA", str(shared_data_dir))
    ds = load_dataset("fashion-mnist")
    assert ds.test_x.shape == (10000, 1, 28, 28)


def test_no_data_dir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGTICKET_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir.*STRONGTICKET_DATA"):
        load_dataset("mnist")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(InputError, match="fashion-mnist"):
        load_dataset("imagenet")
    assert dataset_names() == ["digits", "mnist", "fashion-mnist", "cifar10"]


def _copy_mnist(src: Path, dst: Path) -> Path:
    folder = dst / "mnist"
    shutil.copytree(src / "mnist", folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def test_damaged_file_is_detected(shared_data_dir: Path, tmp_path: Path) -> None:
    folder = _copy_mnist(shared_data_dir, tmp_path)
    with open(folder / "t10k-labels-idx1-ubyte.gz", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(DataError, match="damaged"):
        load_dataset("mnist", tmp_path)


def test_missing_file_is_detected(shared_data_dir: Path, tmp_path: Path) -> None:
    folder = _copy_mnist(shared_data_dir, tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing"):
        load_dataset("mnist", tmp_path)


def test_missing_checksum_file_is_detected(shared_data_dir: Path, tmp_path: Path) -> None:
    folder = _copy_mnist(shared_data_dir, tmp_path)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS"):
        load_dataset("mnist", tmp_path)


def test_missing_folder_is_detected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)


def write_tiny_cifar(root: Path, n_per_batch: int = 6, seed: int = 0) -> Path:
    """Write CIFAR-10 binary batches of ``n_per_batch`` records each, plus SHA256SUMS."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    lines = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, n_per_batch, dtype=np.uint8)
        pixels = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        data = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
        (folder / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return folder


def test_cifar10_reads_official_binary_format(tmp_path: Path) -> None:
    folder = write_tiny_cifar(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (30, 3, 32, 32) and ds.test_x.shape == (6, 3, 32, 32)
    raw = np.fromfile(folder / "test_batch.bin", np.uint8).reshape(6, 3073)
    assert ds.test_y.tolist() == raw[:, 0].tolist()
    # channel-major record: first 1024 bytes are red, row-major
    assert float(ds.test_x[0, 0, 0, 1]) == pytest.approx(raw[0, 2] / 255.0)
    assert float(ds.test_x[0, 2, 31, 31]) == pytest.approx(raw[0, 3072] / 255.0)
    assert ds.augment == "flip_crop"


def test_cifar10_truncated_batch_is_an_error(tmp_path: Path) -> None:
    folder = write_tiny_cifar(tmp_path)
    with pytest.raises(DataError):
        read_cifar_bin_path = folder / "test_batch.bin"
        read_cifar_bin_path.write_bytes(read_cifar_bin_path.read_bytes()[:-5])
        read_cifar_bin(read_cifar_bin_path)
    with pytest.raises(DataError, match="damaged"):
        load_dataset("cifar10", tmp_path)


def test_cifar10_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-bin"):
        load_dataset("cifar10", tmp_path)


def test_bad_gzip_is_a_data_error(tmp_path: Path) -> None:
    from strongticket.train.data import read_idx

    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05ab"))
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_epoch_batches_cover_every_index_once() -> None:
    g = torch.Generator().manual_seed(3)
    batches = list(epoch_batches(10, 4, g))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in epoch_batches(10, 4, g, drop_last=True)] == [4, 4]


def test_epoch_batches_shard_across_ranks() -> None:
    shards = [torch.cat(list(epoch_batches(20, 3, torch.Generator().manual_seed(1), rank=r, world_size=2)))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1])
    assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())


def test_flip_crop_is_a_seeded_translation() -> None:
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    a = augment_batch(x, "flip_crop", torch.Generator().manual_seed(0), padding=2)
    b = augment_batch(x, "flip_crop", torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(a, b) and a.shape == x.shape
    # zero padding with no shift and no flip is the identity; with padding 0 only flips remain
    c = augment_batch(x, "flip_crop", torch.Generator().manual_seed(0), padding=0)
    for i in range(2):
        assert torch.equal(c[i], x[i]) or torch.equal(c[i], x[i].flip(-1))
    assert augment_batch(x, "none", torch.Generator()) is x


def test_subset_is_seeded() -> None:
    ds = load_dataset("digits")
    a, b = ds.subset(100, 50, seed=1), ds.subset(100, 50, seed=1)
    assert a.train_x.shape[0] == 100 and a.test_x.shape[0] == 50
    assert torch.equal(a.train_y, b.train_y)
