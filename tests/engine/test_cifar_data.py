"""CIFAR-10 input pipeline on an archive in the official layout that the test writes itself, and on
the genuine partial archive in ../shared/data when present."""
from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from tests.conftest import CIFAR_PARTIAL, require_shared, write_cifar_archive


def _reference_chw(row: np.ndarray, mean, std) -> np.ndarray:
    # Independent of the pipeline: CIFAR rows are channel planes, so reshape straight to CHW.
    x = row.reshape(3, 32, 32).astype(np.float64) / 255.0
    return ((x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]).astype(np.float32)


def test_test_split_shapes_labels_normalisation(tmp_path):
    from ppnets.engine import CIFAR10_MEAN, CIFAR10_STD, build_cifar10, count_cifar10_images

    path = str(tmp_path / "cifar-10-python.tar.gz")
    written = write_cifar_archive(path, per_batch=3, n_test=7)
    assert count_cifar10_images(path) == {"train": 15, "test": 7}
    ds = build_cifar10("test", data_file=path)
    assert len(ds) == 7
    rows, labels = written["test"]
    for i in range(7):
        img, label = ds[i]
        assert isinstance(img, np.ndarray) and img.dtype == np.float32 and img.shape == (3, 32, 32)
        assert int(label) == labels[i] and np.asarray(label).dtype == np.int64
        np.testing.assert_allclose(img, _reference_chw(rows[i], CIFAR10_MEAN, CIFAR10_STD),
                                   rtol=0, atol=1e-5)


def test_train_split_reads_all_five_batches_and_augments(tmp_path):
    from ppnets.engine import CIFAR10_MEAN, CIFAR10_STD, build_cifar10

    path = str(tmp_path / "c.tar.gz")
    written = write_cifar_archive(path, per_batch=4, n_test=2)
    rows, labels = written["train"]
    plain = build_cifar10("train", data_file=path, random_crop_padding=0, hflip=False)
    assert len(plain) == 20
    assert sorted(int(plain[i][1]) for i in range(20)) == sorted(labels)
    # Without augmentation the train split equals the raw rows (order: data_batch_1..5).
    for i in range(20):
        np.testing.assert_allclose(plain[i][0], _reference_chw(rows[i], CIFAR10_MEAN,
                                                               CIFAR10_STD), atol=1e-5)
    aug = build_cifar10("train", data_file=path)
    ref = _reference_chw(rows[0], CIFAR10_MEAN, CIFAR10_STD)
    pad_value = ((0.0 - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)).astype(np.float32)
    seen_changed = False
    for _ in range(20):
        img = aug[0][0]
        assert img.shape == (3, 32, 32) and img.dtype == np.float32
        # Every augmented view is a shifted (zero-padded) and possibly mirrored copy.
        candidates = []
        padded = np.concatenate([np.broadcast_to(pad_value[:, None, None], (3, 40, 40)).copy()])
        padded[:, 4:36, 4:36] = ref
        for dy in range(9):
            for dx in range(9):
                crop = padded[:, dy:dy + 32, dx:dx + 32]
                candidates += [crop, crop[:, :, ::-1]]
        assert min(np.abs(c - img).max() for c in candidates) < 1e-5
        seen_changed |= not np.allclose(img, ref)
    assert seen_changed, "20 draws of RandomCrop+flip never changed the image"


def test_resize_and_channel_statistics(tmp_path):
    from ppnets.engine import build_cifar10

    path = str(tmp_path / "c.tar.gz")
    # Constant-colour images: after resizing, every pixel keeps its normalised value.
    rows = np.zeros((5, 3072), np.uint8)
    rows[:, :1024], rows[:, 1024:2048], rows[:, 2048:] = 200, 100, 50
    write_cifar_archive(path, rows_labels={"train": (rows, [0, 1, 2, 3, 4]),
                                           "test": (rows[:2], [5, 6])})
    ds = build_cifar10("test", data_file=path, image_size=64, mean=(0.5, 0.5, 0.5),
                       std=(0.25, 0.25, 0.25))
    img, label = ds[1]
    assert img.shape == (3, 64, 64) and int(label) == 6
    expect = (np.array([200, 100, 50]) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(img.reshape(3, -1).mean(1), expect, atol=1e-5)
    np.testing.assert_allclose(img.reshape(3, -1).std(1), 0, atol=1e-5)


def test_missing_file_and_bad_archive_errors(tmp_path):
    from ppnets.engine import DataUnavailableError, build_cifar10, resolve_cifar10_file

    with pytest.raises(DataUnavailableError, match="--data-file"):
        build_cifar10("test", data_file=str(tmp_path / "nope.tar.gz"))
    with pytest.raises(DataUnavailableError, match="holds no cifar-10-python.tar.gz"):
        resolve_cifar10_file(data_dir=str(tmp_path))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar file")
    with pytest.raises(DataUnavailableError, match="could not read"):
        build_cifar10("test", data_file=str(bad))
    with pytest.raises(DataUnavailableError, match="downloading is disabled"):
        build_cifar10("test", data_file=None, download=False)


def test_download_failure_gives_instructions(monkeypatch):
    import paddle

    from ppnets.engine import DataUnavailableError, build_cifar10

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(paddle.vision.datasets.cifar, "_check_exists_and_download", offline)
    with pytest.raises(DataUnavailableError, match="Offline.*--data-file"):
        build_cifar10("train", data_file=None)


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    from ppnets.engine import EpochBatchSampler

    def batches(seed, epoch, **kw):
        s = EpochBatchSampler(10, 3, seed=seed, num_replicas=1, rank=0, **kw)
        s.set_epoch(epoch)
        return list(s)

    a = batches(5, 0)
    assert sorted(i for b in a for i in b) == list(range(10)) and len(a) == 4
    assert a == batches(5, 0) and a != batches(5, 1) and a != batches(6, 0)
    assert len(batches(5, 0, max_batches=2)) == 2
    assert len(EpochBatchSampler(10, 3, seed=0, num_replicas=1, rank=0, max_batches=2)) == 2
    # Two ranks split one permutation without overlap.
    r0 = EpochBatchSampler(10, 2, seed=1, num_replicas=2, rank=0)
    r1 = EpochBatchSampler(10, 2, seed=1, num_replicas=2, rank=1)
    i0, i1 = [i for b in r0 for i in b], [i for b in r1 for i in b]
    assert sorted(i0 + i1) == list(range(10))


def test_real_partial_archive_reads_as_documented():
    from ppnets.engine import CIFAR10_MEAN, CIFAR10_STD, build_cifar10, count_cifar10_images

    path = require_shared(CIFAR_PARTIAL)
    assert count_cifar10_images(path) == {"train": 4829, "test": 932}
    test = build_cifar10("test", data_file=path)
    assert len(test) == 932
    labels = np.array([int(test[i][1]) for i in range(len(test))])
    assert set(labels.tolist()) == set(range(10))
    # Real images normalised with the CIFAR statistics are roughly zero-mean, unit-variance.
    x = np.stack([test[i][0] for i in range(0, 932, 4)])
    assert x.shape[1:] == (3, 32, 32) and x.dtype == np.float32
    assert np.all(np.abs(x.mean(axis=(0, 2, 3))) < 0.15)
    assert np.all(np.abs(x.std(axis=(0, 2, 3)) - 1.0) < 0.15)
    # The first test image equals the archive's first test_batch row, read here independently.
    with tarfile.open(path) as tar:
        batch = pickle.load(tar.extractfile("cifar-10-batches-py/test_batch"), encoding="bytes")
    np.testing.assert_allclose(test[0][0], _reference_chw(batch[b"data"][0], CIFAR10_MEAN,
                                                          CIFAR10_STD), atol=1e-5)
    assert int(test[0][1]) == batch[b"labels"][0]
