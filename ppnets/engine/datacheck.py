"""Checks of image data before anything trains on it.

* :func:`check_data` (``ppnets data check PATH``): every problem of a class folder
  (``<dir>/<class>/*``), a split folder (``<dir>/train/<class>``, ``<dir>/val/<class>``), a
  PaddleClas list file or a CIFAR-10 archive, as a :class:`DataCheckReport`: unreadable, empty,
  truncated and non-image files, files the loader ignores, tiny images, modes converted to RGB,
  EXIF-rotated photos, empty classes, classes of train and val that differ, files in both train
  and val with the same content; for an archive, the batches, shapes, labels and counts.
* :func:`screen_datasets`: the same per-file check ``fit`` and ``evaluate`` run before the first
  step (``data.on_bad_image``: stop with the whole list, or leave the files out and record them),
  sharded across data-parallel ranks, cached in the run's folder for resumptions.

Fast enough for ImageNet: by default each file's header is read (PIL ``open``: format, size,
mode, EXIF) and the end of JPEG/PNG/WebP files is looked at; only a file whose end marker is
missing is decoded to confirm it is cut short. ``decode=True`` decodes every file as training
would (:func:`ppnets.engine.data.load_image`), which also finds corrupt pixel data. Files are
read by a thread pool; duplicates are found by size first, hashing only sizes found in both
splits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import sys
import tarfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from ppnets.utils import atomic_write_json

from .data import (IMG_EXTENSIONS, BadImageError, DataUnavailableError, ImageListDataset,
                   describe_mode, describe_read_error, read_image_list, scan_folder_tree, to_rgb)

__all__ = ["ImageInfo", "Issue", "SplitSummary", "DataCheckReport", "Screening", "inspect_image",
           "check_data", "check_cifar_archive", "screen_datasets", "MIN_SIZE"]

# Images whose shorter side is below this many pixels are reported as tiny.
MIN_SIZE = 32

SEVERITIES = ("error", "warning", "note")

# EXIF orientation tag values other than 1 (as stored), as a viewer shows the photo.
_ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "mirrored top to bottom",
                 5: "mirrored and rotated 90 degrees", 6: "rotated 90 degrees",
                 7: "mirrored and rotated 270 degrees", 8: "rotated 270 degrees"}

_IGNORED_KNOWN = {".ds_store": "macOS folder metadata", "thumbs.db": "Windows thumbnail cache",
                  "desktop.ini": "Windows folder settings"}


@dataclasses.dataclass
class ImageInfo:
    """What reading one file found. ``error`` is why it cannot be read (None: readable as far as
    it was read); ``orientation`` the EXIF orientation when it is not 1."""
    path: str
    error: Optional[str] = None
    size: Optional[Tuple[int, int]] = None
    mode: Optional[str] = None
    format: Optional[str] = None
    orientation: Optional[int] = None
    exif_unreadable: bool = False
    bytes: int = 0


@dataclasses.dataclass
class Issue:
    """One finding: ``severity`` error (the file or data cannot be used as it is), warning
    (usable, but probably not what you want) or note (what the loader will do)."""
    kind: str
    severity: str
    path: str
    message: str
    split: Optional[str] = None


@dataclasses.dataclass
class SplitSummary:
    name: str
    source: str
    images: int
    classes: int
    per_class: Dict[str, int]


@dataclasses.dataclass
class DataCheckReport:
    path: str
    layout: str                     # class_folder | split_folder | list | cifar_archive
    decode: bool
    files_checked: int
    seconds: float
    splits: List[SplitSummary]
    issues: List[Issue]

    def count(self, severity: str) -> int:
        return sum(1 for i in self.issues if i.severity == severity)

    @property
    def ok(self) -> bool:
        """No errors and no warnings (notes say what the loader will do; they are fine)."""
        return not any(i.severity in ("error", "warning") for i in self.issues)

    def unreadable(self) -> List[str]:
        return [i.path for i in self.issues if i.kind == "unreadable"]

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["counts"] = {s: self.count(s) for s in SEVERITIES}
        out["ok"] = self.ok
        return out


# ---------------------------------------------------------------------------------------------
# one file
# ---------------------------------------------------------------------------------------------
def _orientation(img: Image.Image) -> Tuple[Optional[int], bool]:
    """(EXIF orientation if not 1, EXIF unreadable) without decoding the pixels."""
    try:
        if img.format == "PNG":  # PNG's getexif() decodes the image to find a late eXIf chunk
            exif = Image.Exif()
            if img.info.get("exif"):
                exif.load(img.info["exif"])
        else:
            exif = img.getexif()
        value = int(exif.get(0x0112) or 1)
        return (value if value != 1 else None), False
    except Exception:  # noqa: BLE001 - a broken EXIF block; load_image then ignores it too
        return None, True


def _cut_short(f, fmt: Optional[str], nbytes: int) -> bool:
    """Whether the end of the file lacks its format's end marker (JPEG EOI, PNG IEND) or is
    shorter than its header says (WebP): a likely truncated download, confirmed by decoding."""
    if fmt in ("JPEG", "MPO", "PNG"):
        f.seek(max(0, nbytes - 4096))
        tail = f.read()
        return (b"\xff\xd9" if fmt != "PNG" else b"IEND") not in tail
    if fmt == "WEBP":
        f.seek(4)
        return int.from_bytes(f.read(4), "little") + 8 > nbytes
    return False


def inspect_image(path: str, decode: bool = False) -> ImageInfo:
    """Read what :func:`check_data` needs of one file: header (format, size, mode, EXIF
    orientation) and, for JPEG/PNG/WebP, whether the file is cut short (then decoded to be
    sure); with ``decode`` the whole image, converted to RGB as training converts it."""
    info = ImageInfo(path)
    try:
        info.bytes = os.path.getsize(path)
        with open(path, "rb") as f:
            img = Image.open(f)
            info.size, info.mode, info.format = tuple(img.size), img.mode, img.format
            if 0 in img.size:
                info.error = f"zero-size image ({img.size[0]}x{img.size[1]})"
                return info
            if decode or _cut_short(f, img.format, info.bytes):
                f.seek(0)
                img.load()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt files
        info.error = describe_read_error(path, exc)
        return info
    info.orientation, info.exif_unreadable = _orientation(img)
    if decode:
        try:
            to_rgb(img)
        except ValueError as exc:   # values without an 8-bit meaning (32-bit, float)
            info.error = str(exc)
    return info


def _image_issues(info: ImageInfo, split: Optional[str], min_size: int,
                  image_size: int) -> List[Issue]:
    if info.error:
        return [Issue("unreadable", "error", info.path, info.error, split)]
    out = []
    w, h = info.size
    if min(w, h) < min_size:
        out.append(Issue("tiny", "warning", info.path,
                         f"{w}x{h}, smaller than {min_size} px: the transforms upscale it to "
                         f"{image_size}x{image_size} (about {image_size / min(w, h):.0f}x), "
                         "which blurs it", split))
    if info.mode != "RGB":
        out.append(Issue("mode", "note", info.path,
                         f"{info.format} in mode {info.mode}: {describe_mode(info.mode)}", split))
    if info.orientation:
        out.append(Issue("exif_rotated", "note", info.path,
                         f"EXIF orientation {info.orientation} "
                         f"({_ORIENTATIONS.get(info.orientation, 'unknown')}): turned upright "
                         "when loaded", split))
    if info.exif_unreadable:
        out.append(Issue("exif_unreadable", "note", info.path,
                         "EXIF metadata unreadable: the image is used as stored (no rotation)",
                         split))
    return out


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(4, min(32, 4 * cores))   # file reads wait on storage: more threads than cores


def _parallel_imap(fn: Callable, items: Sequence, workers: Optional[int] = None,
                   progress: Optional[str] = None) -> Iterator:
    """``fn(x) for x in items`` on a thread pool, in order, a chunk of futures at a time: an
    ImageNet-size list would otherwise hold a million futures and results at once. Run it to
    its end (its threads stop there): loader workers forked beside live threads can freeze."""
    chunk = 2048
    # a bar only when asked for, and then only on a terminal (disable=None)
    bar = tqdm(total=len(items), desc=progress, unit="file", file=sys.stderr,
               disable=True if progress is None else None)
    with ThreadPoolExecutor(workers or _default_workers()) as pool:
        for start in range(0, len(items), chunk):
            part = list(pool.map(fn, items[start:start + chunk]))
            bar.update(len(part))
            yield from part
    bar.close()


def _file_hash(path: str, limit: Optional[int] = None) -> Optional[str]:
    """Hash of the file's bytes (the first ``limit`` only, when given); None if unreadable."""
    digest = hashlib.blake2b(digest_size=16)
    left = limit
    try:
        with open(path, "rb") as f:
            while left is None or left > 0:
                block = f.read(1 << 20 if left is None else min(1 << 20, left))
                if not block:
                    break
                digest.update(block)
                if left is not None:
                    left -= len(block)
    except OSError:
        return None
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# folders, lists, archives
# ---------------------------------------------------------------------------------------------
def _ignored_issue(path: str, split: Optional[str]) -> Issue:
    name = os.path.basename(path)
    known = _IGNORED_KNOWN.get(name.lower())
    ext = os.path.splitext(name)[1] or "(no extension)"
    why = (f"{known}" if known else f"extension {ext} is not one the loader reads "
           f"({', '.join(IMG_EXTENSIONS)})")
    return Issue("ignored", "note", path, f"ignored by the loader: {why}", split)


def _scan_split(folder: str, split: Optional[str], issues: List[Issue]):
    """(samples, class names) of one class-folder tree, adding its layout issues."""
    scan = scan_folder_tree(folder)
    where = {"train": "training ", "val": "validation "}.get(split or "", "")
    for path in scan.loose:
        if scan.classes:
            issues.append(Issue("not_in_class_folder", "warning", path,
                                "not in a class sub-folder: ignored by the loader", split))
    if not scan.classes:
        images = [p for p in scan.loose if p.lower().endswith(IMG_EXTENSIONS)]
        held = f" ({len(images)} images lie directly in it)" if images else ""
        issues.append(Issue("no_class_folders", "error", folder,
                            f"no class sub-folders{held}: ppnets reads one sub-folder per class "
                            "(<folder>/<class>/*.jpg); sort the images into class folders, or "
                            "describe them in a PaddleClas list file ('relative/path label' per "
                            "line)", split))
        # still check the loose images themselves
        return [(p, -1) for p in images], []
    counts = Counter(label for _, label in scan.samples)
    for idx, cls in enumerate(scan.classes):
        if not counts.get(idx):
            issues.append(Issue("empty_class", "warning", os.path.join(folder, cls),
                                f"class folder '{cls}' holds no images: the class gets an output "
                                f"but no {where}images", split))
    for path in scan.ignored:
        issues.append(_ignored_issue(path, split))
    return scan.samples, scan.classes


def _summary(name: str, source: str, samples, classes: List[str]) -> SplitSummary:
    counts = Counter(label for _, label in samples if label >= 0)   # -1: not in a class folder
    if classes:
        per_class = {cls: counts.get(i, 0) for i, cls in enumerate(classes)}
    else:
        per_class = {str(label): n for label, n in sorted(counts.items())}
    return SplitSummary(name, source, len(samples), len(per_class), per_class)


def _duplicates(train: Dict[int, List[str]], val: Dict[int, List[str]],
                workers: Optional[int], progress: bool) -> List[Tuple[str, str]]:
    """(val file, train file) pairs with the same bytes, from each split's files by size: only
    sizes found in both are read, first their first 64 KiB, then in full where those agree."""
    shared = sorted(set(train) & set(val))
    candidates = [(size, p) for size in shared for p in train[size] + val[size]]
    if not candidates:
        return []
    heads = list(_parallel_imap(lambda c: _file_hash(c[1], 1 << 16), candidates, workers,
                                "comparing same-size files" if progress else None))
    seen = Counter((size, h) for (size, _), h in zip(candidates, heads) if h)
    agree = [(size, p, h) for (size, p), h in zip(candidates, heads) if h and seen[(size, h)] > 1]
    full = {p: h for size, p, h in agree if size <= 1 << 16}    # the head was the whole file
    needed = [p for size, p, _ in agree if size > 1 << 16]
    full.update(zip(needed, list(_parallel_imap(_file_hash, needed, workers))))
    pairs = []
    for size in shared:
        first_train: Dict[str, str] = {}
        for path in train[size]:
            if full.get(path):
                first_train.setdefault(full[path], path)
        for path in val[size]:
            twin = first_train.get(full[path]) if full.get(path) else None
            if twin:
                pairs.append((path, twin))
    return sorted(pairs)


def _is_split_folder(path: str) -> bool:
    return any(os.path.isdir(os.path.join(path, s)) and
               any(e.is_dir() for e in os.scandir(os.path.join(path, s)))
               for s in ("train", "val"))


def _looks_like_archive(path: str) -> bool:
    name = os.path.basename(path).lower()
    return name.endswith((".tar.gz", ".tgz", ".tar")) or tarfile.is_tarfile(path)


def check_data(path: str, root: Optional[str] = None, decode: bool = False,
               min_size: int = MIN_SIZE, image_size: int = 224,
               workers: Optional[int] = None, progress: bool = False) -> DataCheckReport:
    """Check image data the way ppnets will read it (see the module docstring).

    ``path``: a class folder, a split folder (``train/``, ``val/``), a PaddleClas list file
    (paths relative to ``root``, default the list's folder) or a CIFAR-10 archive.
    ``image_size``: the network input side, for what tiny images are upscaled to.
    Raises ValueError when ``path`` does not exist or ``root`` does not fit it.
    """
    t0 = time.perf_counter()
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist: give a folder of class folders, a folder with "
                         "train/ and val/, a PaddleClas list file or a cifar-10-python.tar.gz")
    if os.path.isfile(path) and _looks_like_archive(path):
        if root:
            raise ValueError("--root is for list files; a CIFAR-10 archive needs none")
        return check_cifar_archive(path)
    if os.path.isdir(path) and root:
        raise ValueError("--root is for list files: the paths of a folder are its own")
    issues: List[Issue] = []
    splits: List[SplitSummary] = []
    if os.path.isfile(path):
        layout, to_check = "list", _scan_list_file(path, root, issues, splits)
    elif _is_split_folder(path):
        layout, to_check = "split_folder", _scan_split_folder(path, issues, splits)
    else:
        layout, to_check = "class_folder", _scan_class_folder(path, issues, splits)
    file_issues, by_size = _read_files(to_check, layout == "split_folder", decode, min_size,
                                       image_size, workers, progress)
    issues += file_issues
    if by_size["train"] and by_size["val"]:
        issues += _duplicate_issues(path, by_size, workers, progress)
    return DataCheckReport(os.path.abspath(path), layout, decode, len(to_check),
                           time.perf_counter() - t0, splits, _sorted(issues))


# The scans of each layout return the (file, split) pairs to read, adding the summaries of the
# splits and the issues of the layout.
def _scan_list_file(path: str, root: Optional[str], issues: List[Issue],
                     splits: List[SplitSummary]) -> List[Tuple[str, Optional[str]]]:
    try:
        samples = read_image_list(path, root)
    except (ValueError, DataUnavailableError) as exc:
        samples = []
        issues.append(Issue("list_file", "error", path, str(exc)))
    splits.append(_summary("list", os.path.abspath(path), samples, []))
    return [(p, None) for p, _ in samples]


def _scan_split_folder(path: str, issues: List[Issue],
                        splits: List[SplitSummary]) -> List[Tuple[str, Optional[str]]]:
    to_check: List[Tuple[str, Optional[str]]] = []
    found = {}
    for split in ("train", "val"):
        folder = os.path.join(path, split)
        if not os.path.isdir(folder):
            issues.append(Issue("missing_split", "warning", folder,
                                f"no {split}/ folder: only "
                                f"{'val' if split == 'train' else 'train'}/ is checked",
                                split))
            continue
        samples, classes = _scan_split(folder, split, issues)
        found[split] = (samples, classes)
        splits.append(_summary(split, os.path.abspath(folder), samples, classes))
        # val before train: val's sizes are known when train's stream by (duplicates)
        to_check = ([(p, split) for p, _ in samples] + to_check if split == "val"
                    else to_check + [(p, split) for p, _ in samples])
        if not samples:
            issues.append(Issue("no_images", "error", folder,
                                f"no image files in {split}/ ({', '.join(IMG_EXTENSIONS)})",
                                split))
    if "train" in found and "val" in found:
        issues += _class_mismatch_issues(path, found["train"][1], found["val"][1])
    return to_check


def _class_mismatch_issues(path: str, train_classes: List[str],
                           val_classes: List[str]) -> List[Issue]:
    issues = []
    for cls in sorted(set(train_classes) ^ set(val_classes)):
        where, other = (("train", "val") if cls in train_classes else ("val", "train"))
        issues.append(Issue("class_mismatch", "error", os.path.join(path, where, cls),
                            f"class '{cls}' is in {where}/ but not in {other}/: both "
                            "splits need the same class folders (a class's index is its "
                            "position among the sorted names)", where))
    return issues


def _scan_class_folder(path: str, issues: List[Issue],
                        splits: List[SplitSummary]) -> List[Tuple[str, Optional[str]]]:
    samples, classes = _scan_split(path, None, issues)
    splits.append(_summary("images", os.path.abspath(path), samples, classes))
    if not samples and classes:
        issues.append(Issue("no_images", "error", path, "no image files in the class "
                            f"folders ({', '.join(IMG_EXTENSIONS)})"))
    return [(p, None) for p, _ in samples]


def _read_files(to_check: List[Tuple[str, Optional[str]]], find_duplicates: bool, decode: bool,
                min_size: int, image_size: int, workers: Optional[int], progress: bool
                ) -> Tuple[List[Issue], Dict[str, Dict[int, List[str]]]]:
    """The issues of each file and, with ``find_duplicates``, the readable files of each split by
    size where a same-size val file exists (train's duplicate candidates)."""
    infos = _parallel_imap(lambda f: inspect_image(f, decode), [f for f, _ in to_check], workers,
                           ("decoding" if decode else "reading headers") if progress else None)
    issues: List[Issue] = []
    by_size: Dict[str, Dict[int, List[str]]] = {"train": {}, "val": {}}
    for info, (_, split) in zip(infos, to_check):
        issues += _image_issues(info, split, min_size, image_size)
        if find_duplicates and info.error is None and (
                split == "val" or info.bytes in by_size["val"]):
            by_size[split].setdefault(info.bytes, []).append(info.path)
    return issues, by_size


def _duplicate_issues(path: str, by_size: Dict[str, Dict[int, List[str]]],
                      workers: Optional[int], progress: bool) -> List[Issue]:
    return [Issue("duplicate", "warning", val_file,
                  f"same content as {os.path.relpath(train_file, path)}: the "
                  "validation score counts an image the model trained on", "val")
            for val_file, train_file in _duplicates(by_size["train"], by_size["val"], workers,
                                                    progress)]


def _sorted(issues: List[Issue]) -> List[Issue]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(issues, key=lambda i: (rank[i.severity], i.kind, i.path))


CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR_FULL = {"train": 50000, "test": 10000}
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def check_cifar_archive(path: str) -> DataCheckReport:
    """A ``cifar-10-python.tar.gz``: the five training batches and the test batch exist and
    unpickle; ``data`` is uint8 ``(N, 3072)``; ``labels`` N integers in 0..9; the counts."""
    t0 = time.perf_counter()
    issues: List[Issue] = []
    try:
        found = _unpickle_cifar_batches(path, issues)
    except (tarfile.TarError, OSError, EOFError) as exc:
        issues.append(Issue("cifar_archive", "error", path,
                            f"not a readable tar archive ({type(exc).__name__}: {exc}); the "
                            "official file is https://www.cs.toronto.edu/~kriz/"
                            "cifar-10-python.tar.gz"))
        return DataCheckReport(os.path.abspath(path), "cifar_archive", False, 0,
                               time.perf_counter() - t0, [], issues)
    splits: List[SplitSummary] = []
    for split in CIFAR_BATCHES:
        summary, split_issues = _check_cifar_split(path, split, found)
        splits.append(summary)
        issues += split_issues
    return DataCheckReport(os.path.abspath(path), "cifar_archive", False,
                           sum(s.images for s in splits), time.perf_counter() - t0, splits,
                           _sorted(issues))


def _unpickle_cifar_batches(path: str, issues: List[Issue]) -> Dict[str, Any]:
    """Batch file name -> its unpickled content (None: it cannot be unpickled, added to
    ``issues``). Raises what tarfile raises for an unreadable archive."""
    found: Dict[str, Any] = {}
    with tarfile.open(path, mode="r") as tar:
        for member in tar:
            base = os.path.basename(member.name)
            if base in CIFAR_BATCHES["train"] + CIFAR_BATCHES["test"] and member.isfile():
                try:
                    found[base] = pickle.load(tar.extractfile(member), encoding="bytes")
                except Exception as exc:  # noqa: BLE001 - any unpickling failure
                    issues.append(Issue("cifar_batch", "error", f"{path}:{member.name}",
                                        f"cannot be unpickled ({type(exc).__name__}: {exc})"))
                    found[base] = None
    return found


def _check_cifar_split(path: str, split: str,
                       found: Dict[str, Any]) -> Tuple[SplitSummary, List[Issue]]:
    """The summary of one split of the archive and the issues of its batches."""
    issues: List[Issue] = []
    labels_all: List[int] = []
    for base in CIFAR_BATCHES[split]:
        where = f"{path}:cifar-10-batches-py/{base}"
        if base not in found:
            issues.append(Issue("cifar_batch", "error", where,
                                "missing: expected cifar-10-batches-py/data_batch_1..5 and "
                                "test_batch (the official 'python version' layout)", split))
        elif found[base] is not None:   # None: not unpickled, reported already
            batch_issues, labels = _check_cifar_batch(found[base], where, split)
            issues += batch_issues
            labels_all += labels
    counts = Counter(labels_all)
    summary = SplitSummary(split, os.path.abspath(path), len(labels_all), len(counts),
                           {CIFAR_CLASSES[k] if 0 <= k <= 9 else str(k): n
                            for k, n in sorted(counts.items())})
    if labels_all and len(labels_all) != CIFAR_FULL[split]:
        issues.append(Issue("cifar_count", "note", path,
                            f"{split}: {len(labels_all)} images (the official archive has "
                            f"{CIFAR_FULL[split]}): a partial archive", split))
    return summary, issues


def _check_cifar_batch(batch: Any, where: str, split: str) -> Tuple[List[Issue], List[int]]:
    """The issues of one unpickled batch and its integer labels."""
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        return [Issue("cifar_batch", "error", where,
                      "no b'data'/b'labels' entries (not a CIFAR-10 batch)", split)], []
    issues = []
    data = np.asarray(batch[b"data"])
    labels = list(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        issues.append(Issue("cifar_batch", "error", where,
                            f"data is {data.dtype} {tuple(data.shape)}, expected uint8 "
                            "(N, 3072): 32x32 RGB rows", split))
    if len(labels) != len(data):
        issues.append(Issue("cifar_batch", "error", where,
                            f"{len(labels)} labels for {len(data)} images", split))
    bad = [v for v in labels if not isinstance(v, (int, np.integer)) or not 0 <= v <= 9]
    if bad:
        issues.append(Issue("cifar_batch", "error", where,
                            f"{len(bad)} labels outside 0..9 (e.g. {bad[0]!r})", split))
    return issues, [int(v) for v in labels if isinstance(v, (int, np.integer))]


# ---------------------------------------------------------------------------------------------
# before a run
# ---------------------------------------------------------------------------------------------
_CACHE_VERSION = 1


@dataclasses.dataclass
class Screening:
    """What :func:`screen_datasets` found and did. ``left_out``: ``{split, path, reason}`` of
    each unreadable file (left out with ``skip``); ``notes``: counts of tiny images, modes
    converted to RGB and EXIF-rotated photos; ``cached``: read from the run's cache."""
    on_bad_image: str
    checked: int
    left_out: List[Dict[str, str]]
    notes: Dict[str, int]
    cached: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return {"on_bad_image": self.on_bad_image, "checked_images": self.checked,
                "left_out_count": len(self.left_out), "left_out": list(self.left_out),
                "notes": dict(self.notes)}


def _stat_line(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n"
    except OSError:
        return f"{path}\tmissing\n"


def _fingerprint(files: Sequence[Tuple[str, str]], min_size: int, image_size: int) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION} {min_size} {image_size}\n".encode())
    lines = _parallel_imap(_stat_line, [p for _, p in files])
    for line, (split, _) in zip(lines, files):   # the generator first: zip runs it to its end
        digest.update(f"{split}\t{line}".encode())
    return digest.hexdigest()


def _inspect_files(files: Sequence[Tuple[str, str]], min_size: int, image_size: int,
                   progress: bool) -> Tuple[List[Dict[str, str]], Counter]:
    infos = _parallel_imap(inspect_image, [p for _, p in files],
                           progress="checking images" if progress else None)
    bad, notes = [], Counter()
    for info, (split, _) in zip(infos, files):   # the generator first: zip runs it to its end
        for issue in _image_issues(info, split, min_size, image_size):
            if issue.kind == "unreadable":
                bad.append({"split": split, "path": info.path, "reason": issue.message})
            else:
                notes[issue.kind] += 1
    return bad, notes


def _broadcast(obj, rank: int):
    """Rank 0's ``obj`` on every rank."""
    import paddle.distributed as dist

    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    import paddle.distributed as dist

    gathered: list = []
    dist.all_gather_object(gathered, obj)
    return gathered


def screen_datasets(datasets: Mapping[str, Any], on_bad_image: str, *, image_size: int,
                    min_size: int = MIN_SIZE, cache_file: Optional[str] = None,
                    log: bool = True, progress: bool = False,
                    world_size: int = 1, rank: int = 0) -> Tuple[Dict[str, Any], Screening]:
    """Check every file of the :class:`ImageListDataset` values of ``datasets`` (split name ->
    data set; others, e.g. CIFAR-10, pass through) before a run.

    ``on_bad_image="error"``: raise :class:`BadImageError` listing every unreadable file;
    ``"skip"``: return the data sets without them and say so (``log``). Under data parallelism
    (``world_size`` > 1, collectives of ``paddle.distributed``) each rank checks its share of the
    files and all ranks get the same list. ``cache_file``: a JSON record of the result keyed by
    every file's path, size and modification time, reused when nothing changed (a resumed run).
    Returns (data sets, :class:`Screening`).
    """
    files = [(split, path) for split, ds in datasets.items()
             if isinstance(ds, ImageListDataset) for path, _ in ds.samples]
    if not files:
        return dict(datasets), Screening(on_bad_image, 0, [], {})
    result, cached = _screening_result(files, min_size, image_size, cache_file, progress,
                                       world_size, rank)
    screening = Screening(on_bad_image, len(files), list(result["left_out"]),
                          dict(result["notes"]), cached)
    bad = screening.left_out
    if bad and on_bad_image == "error":
        raise BadImageError.for_files([(b["path"], b["reason"]) for b in bad],
                                      _what(datasets), len(files), _common_folder(files))
    out = _without_bad_files(datasets, bad)
    if log:
        _log_screening(screening, _common_folder(files))
    return out, screening


def _screening_result(files: Sequence[Tuple[str, str]], min_size: int, image_size: int,
                      cache_file: Optional[str], progress: bool, world_size: int,
                      rank: int) -> Tuple[Dict[str, Any], bool]:
    """(``{left_out, notes}``, whether it came from the cache): rank 0's cached record when the
    files did not change, else every rank's inspection of its share, cached by rank 0."""
    result = None
    fingerprint = None
    if rank == 0 and cache_file:
        fingerprint = _fingerprint(files, min_size, image_size)
        result = _read_cache(cache_file, fingerprint)
    if world_size > 1:
        result = _broadcast(result, rank)
    if result is not None:
        return result, True
    bad, notes = _inspect_shards(files, min_size, image_size, progress, world_size, rank)
    result = {"left_out": bad, "notes": dict(notes)}
    if rank == 0 and cache_file:
        atomic_write_json(cache_file, {"version": _CACHE_VERSION,
                                       "fingerprint": fingerprint, **result})
    return result, False


def _inspect_shards(files: Sequence[Tuple[str, str]], min_size: int, image_size: int,
                    progress: bool, world_size: int,
                    rank: int) -> Tuple[List[Dict[str, str]], Counter]:
    """:func:`_inspect_files` of every file, each rank checking every ``world_size``-th one."""
    if world_size > 1:
        mine = _inspect_files(files[rank::world_size], min_size, image_size,
                              progress and rank == 0)
        parts = _gather(mine)
        bad = sorted((b for part, _ in parts for b in part),
                     key=lambda b: (b["split"], b["path"]))
        notes = sum((Counter(n) for _, n in parts), Counter())
        return bad, notes
    return _inspect_files(files, min_size, image_size, progress)


def _without_bad_files(datasets: Mapping[str, Any],
                       bad: List[Dict[str, str]]) -> Dict[str, Any]:
    """The data sets without the ``bad`` files; raises BadImageError when one is left empty."""
    out = dict(datasets)
    if bad:
        for split, ds in datasets.items():
            drop = {b["path"] for b in bad if b["split"] == split}
            if drop and isinstance(ds, ImageListDataset):
                out[split] = ds.without(drop)
        empty = [s for s, ds in out.items() if isinstance(ds, ImageListDataset) and not len(ds)]
        if empty:
            raise BadImageError(f"no readable {_what({s: out[s] for s in empty})} left after "
                                f"leaving out {len(bad)} unreadable files (`ppnets data check "
                                "FOLDER` lists them)", [(b["path"], b["reason"]) for b in bad])
    return out


def _common_folder(files: Sequence[Tuple[str, str]]) -> str:
    """The folder holding every file (what to give ``ppnets data check``)."""
    try:
        return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for _, p in files])
    except ValueError:   # different drives
        return "FOLDER"


def _what(datasets: Mapping[str, Any]) -> str:
    words = {"train": "training", "val": "validation", "eval": "evaluation"}
    names = [words.get(s, s) for s, ds in datasets.items() if isinstance(ds, ImageListDataset)]
    return f"{' and '.join(names)} images" if names else "images"


def _read_cache(cache_file: str, fingerprint: str) -> Optional[Dict[str, Any]]:
    import json

    try:
        with open(cache_file, "r", encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if saved.get("version") != _CACHE_VERSION or saved.get("fingerprint") != fingerprint:
        return None
    return {"left_out": saved.get("left_out", []), "notes": saved.get("notes", {})}


_NOTE_WORDS = {"tiny": "smaller than {min} px (upscaled)",
               "mode": "converted to RGB (greyscale, CMYK, alpha, palette or 16-bit)",
               "exif_rotated": "turned upright by their EXIF orientation",
               "exif_unreadable": "with unreadable EXIF (used as stored)"}


def _log_screening(s: Screening, folder: str) -> None:
    if s.left_out:
        lines = [f"[ppnets.engine] warning: {len(s.left_out)} of {s.checked} images cannot be "
                 "read and are left out of the run (data.on_bad_image=skip):"]
        lines += [f"  {b['path']}: {b['reason']}" for b in s.left_out]
        print("\n".join(lines), file=sys.stderr, flush=True)
    notes = [f"{n} {_NOTE_WORDS.get(k, k).format(min=MIN_SIZE)}" for k, n in
             sorted(s.notes.items()) if n]
    if notes:
        print(f"[ppnets.engine] data check of {s.checked} images: {'; '.join(notes)}. "
              f"`ppnets data check {folder}` lists them.", file=sys.stderr, flush=True)
