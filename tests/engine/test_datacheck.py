"""``ppnets.engine.datacheck``: the report of ``check_data`` on every layout (split folder, class
folder, list file, CIFAR-10 archive, flat folder) and the pre-run screening with its cache."""
from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tarfile

import pytest

from ppnets.engine.data import BadImageError, ImageListDataset
from ppnets.engine.datacheck import check_data, inspect_image, screen_datasets
from tests.conftest import write_cifar_archive
from tests.engine.bad_images import make_zoo, rgb_image


def _by_path(report, kind):
    return {i.path: i for i in report.issues if i.kind == kind}


def test_split_folder_report_lists_every_problem(tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    root = str(tmp_path / "zoo")
    report = check_data(root)
    assert report.layout == "split_folder" and not report.decode and not report.ok
    assert [(s.name, s.classes) for s in report.splits] == [("train", 2), ("val", 2)]
    unreadable = _by_path(report, "unreadable")
    # headers only: every unreadable file but the corrupt pixel data
    assert sorted(unreadable) == sorted(zoo["header_bad"])
    for path, word in zoo["header_bad"].items():
        assert word in unreadable[path].message and unreadable[path].severity == "error"
    assert {p: i.severity for p, i in _by_path(report, "tiny").items()} == {
        p: "warning" for p, k in zoo["odd"].items() if k == "tiny"}
    assert "upscale it to 224x224" in next(iter(_by_path(report, "tiny").values())).message
    modes = _by_path(report, "mode")
    assert sorted(modes) == sorted(p for p, k in zoo["odd"].items() if k == "mode")
    assert "composited over white" in modes[next(p for p in modes if "RGBA" in p)].message
    assert "scaled to 8 bits" in modes[next(p for p in modes if "grey16" in p)].message
    assert list(_by_path(report, "exif_rotated")) == [
        p for p, k in zoo["odd"].items() if k == "exif_rotated"]
    ignored = _by_path(report, "ignored")
    assert sorted(ignored) == sorted(zoo["ignored"])
    assert all("ignored by the loader" in i.message for i in ignored.values())
    dup = _by_path(report, "duplicate")
    val_file, train_file = zoo["duplicate"]
    assert list(dup) == [val_file] and os.path.relpath(train_file, root) in dup[val_file].message
    assert report.files_checked == sum(s.images for s in report.splits)
    # the full decode also finds the PNGs whose pixel data is corrupt
    decoded = check_data(root, decode=True)
    assert sorted(_by_path(decoded, "unreadable")) == sorted(
        list(zoo["header_bad"]) + zoo["decode_bad"])
    # the JSON form holds everything
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"]["error"] == len(zoo["header_bad"]) and data["ok"] is False


def test_layout_problems_classes_and_empty_folders(tmp_path):
    root = tmp_path / "d"
    for split, classes in (("train", ("a", "b", "empty")), ("val", ("a", "c"))):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            if cls != "empty":
                rgb_image(0).save(root / split / cls / f"{split}.png")
    rgb_image(1).save(root / "train" / "loose.png")
    report = check_data(str(root))
    mismatch = {os.path.relpath(p, root): i.severity for p, i in
                _by_path(report, "class_mismatch").items()}
    assert mismatch == {os.path.join("train", "b"): "error",
                        os.path.join("train", "empty"): "error",
                        os.path.join("val", "c"): "error"}
    assert list(_by_path(report, "empty_class")) == [str(root / "train" / "empty")]
    assert list(_by_path(report, "not_in_class_folder")) == [str(root / "train" / "loose.png")]
    # a class folder of its own, and a flat folder of images
    clean = check_data(str(root / "train"))
    assert clean.layout == "class_folder" and [s.images for s in clean.splits] == [2]
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        rgb_image(i).save(flat / f"{i}.png")
    report = check_data(str(flat))
    issue = _by_path(report, "no_class_folders")[str(flat)]
    assert issue.severity == "error" and "3 images lie directly in it" in issue.message
    assert report.files_checked == 3     # the loose images are still checked
    with pytest.raises(ValueError, match="does not exist"):
        check_data(str(tmp_path / "nowhere"))


def test_list_file_with_missing_and_bad_files(tmp_path):
    make_zoo(tmp_path / "zoo", decode_bad=False)
    (tmp_path / "list.txt").write_text("zoo/train/dog/0.jpg 1\nzoo/train/cat/page.jpg 0\n"
                                       "zoo/gone.jpg 0\n")
    report = check_data(str(tmp_path / "list.txt"))
    assert report.layout == "list" and report.splits[0].images == 3
    unreadable = {os.path.basename(p): i.message for p, i in _by_path(report, "unreadable").items()}
    assert unreadable == {"page.jpg": unreadable["page.jpg"], "gone.jpg": "file not found"}
    assert "HTML" in unreadable["page.jpg"]
    (tmp_path / "other").mkdir()
    shutil.copy(tmp_path / "list.txt", tmp_path / "other" / "list.txt")
    rooted = check_data(str(tmp_path / "other" / "list.txt"), root=str(tmp_path))
    assert sorted(_by_path(rooted, "unreadable")) == sorted(_by_path(report, "unreadable"))
    (tmp_path / "broken.txt").write_text("zoo/train/dog/0.jpg one\n")
    broken = check_data(str(tmp_path / "broken.txt"))
    assert _by_path(broken, "list_file")[str(tmp_path / "broken.txt")].severity == "error"


def _add(tar, name, obj):
    payload = pickle.dumps(obj, protocol=2)
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def test_cifar_archive_batches_shapes_labels_counts(tmp_path):
    good = str(tmp_path / "cifar-10-python.tar.gz")
    write_cifar_archive(good, per_batch=4, n_test=6)
    report = check_data(good)
    assert report.layout == "cifar_archive" and report.ok
    assert [(s.name, s.images) for s in report.splits] == [("train", 20), ("test", 6)]
    assert [i.kind for i in report.issues] == ["cifar_count", "cifar_count"]   # partial: notes
    import numpy as np
    bad = str(tmp_path / "bad.tar.gz")
    with tarfile.open(bad, "w:gz") as tar:
        for i in range(1, 5):   # data_batch_5 missing
            _add(tar, f"cifar-10-batches-py/data_batch_{i}",
                 {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
        _add(tar, "cifar-10-batches-py/test_batch",
             {b"data": np.zeros((2, 32, 32), np.uint8), b"labels": [3, 12]})
    issues = [i.message for i in check_data(bad).issues if i.severity == "error"]
    assert any(m.startswith("missing") for m in issues)
    assert any("expected uint8 (N, 3072)" in m for m in issues)
    assert any("1 labels outside 0..9 (e.g. 12)" in m for m in issues)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    junk = check_data(str(tmp_path / "junk.tar.gz"))
    assert junk.issues[0].kind == "cifar_archive" and not junk.ok


def test_inspect_reads_headers_and_confirms_a_missing_end_marker(tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    cut = next(p for p, w in zoo["header_bad"].items() if w == "truncated")
    assert "truncated" in inspect_image(cut).error
    corrupt = zoo["decode_bad"][0]
    assert inspect_image(corrupt).error is None           # header and end are fine
    assert "cannot be decoded" in inspect_image(corrupt, decode=True).error
    rotated = next(p for p, k in zoo["odd"].items() if k == "exif_rotated")
    info = inspect_image(rotated)
    assert info.orientation == 6 and info.size == (48, 32) and info.format == "JPEG"


def test_screening_errors_skips_and_caches(tmp_path):
    zoo = make_zoo(tmp_path / "zoo", decode_bad=False)
    samples = [(os.path.join(d, f), 0) for d, _, fs in os.walk(tmp_path / "zoo" / "train")
               for f in sorted(fs) if f.endswith((".jpg", ".png"))]
    train = ImageListDataset(samples)
    with pytest.raises(BadImageError) as info:
        screen_datasets({"train": train}, "error", image_size=32, log=False)
    train_bad = sorted(p for p in zoo["header_bad"] if "train" in p)
    assert sorted(p for p, _ in info.value.files) == train_bad
    assert str(info.value).startswith(f"{len(train_bad)} of {len(samples)} training images")
    cache = str(tmp_path / "run" / "datacheck.json")
    out, screening = screen_datasets({"train": train}, "skip", image_size=32, cache_file=cache,
                                     log=False)
    assert not screening.cached and len(out["train"]) == len(samples) - len(train_bad)
    assert sorted(b["path"] for b in screening.left_out) == train_bad
    assert out["train"].on_bad_image == "error"    # the data set's own setting is kept
    _, again = screen_datasets({"train": train}, "skip", image_size=32, cache_file=cache,
                               log=False)
    assert again.cached and again.left_out == screening.left_out
    # any change to a file (size, time) or to the list makes it check again
    os.remove(train_bad[0])
    rgb_image(0).save(train_bad[0], "JPEG")
    _, changed = screen_datasets({"train": train}, "skip", image_size=32, cache_file=cache,
                                 log=False)
    assert not changed.cached and len(changed.left_out) == len(train_bad) - 1
    # nothing readable left
    only_bad = ImageListDataset([(p, 0) for p in train_bad[1:]])
    with pytest.raises(BadImageError, match="no readable training images left"):
        screen_datasets({"train": only_bad}, "skip", image_size=32, log=False)


def test_screening_logs_in_skip_mode(tmp_path, capsys):
    zoo = make_zoo(tmp_path / "zoo", decode_bad=False)
    bad = next(iter(zoo["header_bad"]))
    good = next(p for p, k in zoo["odd"].items() if k == "tiny")
    screen_datasets({"val": ImageListDataset([(bad, 0), (good, 0)])}, "skip", image_size=32)
    err = capsys.readouterr().err
    assert "1 of 2 images cannot be read and are left out" in err and bad in err
    assert "1 smaller than 32 px" in err and "ppnets data check" in err
    screen_datasets({"val": ImageListDataset([(bad, 0), (good, 0)])}, "skip", image_size=32,
                    log=False)
    assert capsys.readouterr().err == ""


def test_duplicates_compare_whole_files_not_sizes_or_beginnings(tmp_path):
    import numpy as np
    from PIL import Image

    pixels = np.random.RandomState(0).randint(0, 256, (200, 200, 3), np.uint8)   # 120 KB BMP
    other_top = pixels.copy()
    other_top[0] ^= 1      # BMP stores rows bottom-up: the top row is the file's last bytes
    for split, cls in (("train", "a"), ("val", "a")):
        (tmp_path / split / cls).mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "train" / "a" / "big.bmp")
    Image.fromarray(pixels).save(tmp_path / "val" / "a" / "copy.bmp")
    Image.fromarray(other_top).save(tmp_path / "val" / "a" / "near.bmp")
    near, copy = tmp_path / "val" / "a" / "near.bmp", tmp_path / "val" / "a" / "copy.bmp"
    assert near.stat().st_size == copy.stat().st_size
    assert near.read_bytes()[:1 << 16] == copy.read_bytes()[:1 << 16]
    report = check_data(str(tmp_path))
    assert list(_by_path(report, "duplicate")) == [str(copy)]
