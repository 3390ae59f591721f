"""A tiny image folder holding every kind of file users' folders hold, for the bad-image tests
(tests/engine/test_bad_images.py, tests/engine/test_datacheck.py, tests/cli/test_data_cli.py).

``make_zoo(root)`` writes ``root/train/{cat,dog}/`` and ``root/val/{cat,dog}/`` with 32x32
images and returns what it wrote: ``header_bad`` (files the header check finds unreadable, with
a word of the reason each must give), ``decode_bad`` (files whose header is fine but whose pixel
data is corrupt: found only when decoded), ``odd`` (readable images the loader converts: mode,
EXIF, tiny) and ``ignored`` (files without an image extension).
"""
from __future__ import annotations

import io
import os
import shutil

import numpy as np
from PIL import Image

SIZE = 32


def rgb_image(seed: int, w: int = SIZE, h: int = SIZE) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3), np.uint8))


def corrupt_png(seed: int) -> bytes:
    """A PNG whose header and end are intact but whose compressed pixel data is garbage."""
    buf = io.BytesIO()
    rgb_image(seed).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.find(b"IDAT") + 20
    for k in range(start, start + 40):
        data[k] ^= 0x5A
    return bytes(data)


def truncated_jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    rgb_image(seed, 64, 64).save(buf, "JPEG", quality=90)
    return buf.getvalue()[:len(buf.getvalue()) // 2]


def make_zoo(root, header_bad: bool = True, decode_bad: bool = True) -> dict:
    root = str(root)
    shutil.rmtree(root, ignore_errors=True)
    for split, n in (("train", 3), ("val", 2)):
        for c, cls in enumerate(("cat", "dog")):
            folder = os.path.join(root, split, cls)
            os.makedirs(folder)
            for i in range(n):
                rgb_image(100 * c + 10 * (split == "val") + i).save(f"{folder}/{i}.jpg")
    cat, val_cat, val_dog = (os.path.join(root, "train", "cat"), os.path.join(root, "val", "cat"),
                             os.path.join(root, "val", "dog"))
    made = {"header_bad": {}, "decode_bad": [], "odd": {}, "ignored": []}

    def write(path, data, table=None, word=None):
        with open(path, "wb") as f:
            f.write(data)
        if table is not None:
            table[path] = word

    if header_bad:
        bad = made["header_bad"]
        write(f"{cat}/page.jpg", b"<!DOCTYPE html><html><body>404</body></html>", bad, "HTML")
        write(f"{cat}/empty.jpg", b"", bad, "empty file")
        write(f"{cat}/._0.jpg", b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"\x00" * 80, bad,
              "resource fork")
        write(f"{cat}/cut.jpg", truncated_jpeg(1), bad, "truncated")
        write(f"{cat}/phone.jpg", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00" + b"\x00" * 40,
              bad, "HEIC")
        write(f"{val_dog}/page.jpg", b"<html><head><title>Error</title></head></html>", bad,
              "HTML")
    if decode_bad:
        for seed, folder in enumerate((cat, val_cat)):
            write(f"{folder}/corrupt.png", corrupt_png(2 + seed))
            made["decode_bad"].append(f"{folder}/corrupt.png")
    odd = made["odd"]
    rgb_image(3, 1, 1).save(f"{cat}/tiny.png")
    odd[f"{cat}/tiny.png"] = "tiny"
    for mode in ("L", "CMYK", "RGBA", "LA", "P"):
        path = f"{cat}/mode_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
        rgb_image(4).convert(mode).save(path)
        odd[path] = "mode"
    Image.fromarray((np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 64)).save(
        f"{cat}/grey16.png")
    odd[f"{cat}/grey16.png"] = "mode"
    photo = rgb_image(5, 48, SIZE)
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(f"{cat}/rotated.jpg", exif=exif)
    odd[f"{cat}/rotated.jpg"] = "exif_rotated"
    for name, data in ((".DS_Store", b"\x00\x00\x00\x01Bud1" + b"\x00" * 30),
                       ("notes.txt", b"labelled by Ann")):
        write(f"{cat}/{name}", data)
        made["ignored"].append(f"{cat}/{name}")
    # the same picture in train and val
    shutil.copy(os.path.join(root, "train", "dog", "1.jpg"), os.path.join(val_dog, "again.jpg"))
    made["duplicate"] = (os.path.join(val_dog, "again.jpg"),
                         os.path.join(root, "train", "dog", "1.jpg"))
    return made


# ---------------------------------------------------------------------------------------------
# driver: every data path over the zoo, with 0, 1 and 2 loader workers, in one process
# ---------------------------------------------------------------------------------------------
def _config(zoo: str, out: str, on_bad_image: str, num_workers: int) -> dict:
    return {"model": {"name": "test_tiny_sleepy"},
            "data": {"dataset": "folder", "train_dir": os.path.join(zoo, "train"),
                     "val_dir": os.path.join(zoo, "val"), "image_size": SIZE, "batch_size": 4,
                     "num_workers": num_workers, "on_bad_image": on_bad_image},
            "optim": {"name": "sgd", "lr": 0.01}, "sched": {"name": "constant"},
            "train": {"epochs": 1, "seed": 3, "verbose": 0}, "output_dir": out}


# (case, runner, arguments), run in this order; a name ending in -0 loads in the main process
PLAN = [*[(f"loader-error-{nw}", "loader", ("error", nw)) for nw in (0, 1, 2)],
        ("loader-skip-2", "loader", ("skip", 2)),
        ("fit-precheck-error", "fit", ("full", "error", 2)),
        *[c for nw in (0, 1, 2) for c in ((f"fit-decode-error-{nw}", "fit",
                                           ("decode", "error", nw)),
                                          (f"fit-skip-{nw}", "fit", ("full", "skip", nw)))],
        ("eval-precheck-error", "eval", ("full", "error", 0)),
        *[c for nw in (0, 1, 2) for c in ((f"eval-decode-error-{nw}", "eval",
                                           ("decode", "error", nw)),
                                          (f"eval-skip-{nw}", "eval", ("full", "skip", nw)))],
        ("cli-train-decode-error-2", "cli-train", ("decode", 2))]


def run_cases(work: str, out_json: str) -> None:
    """Run every case, writing ``{case: outcome}`` to ``out_json`` after each one (a case that
    hangs is the one missing)."""
    import contextlib
    import json
    import sys
    import time

    import paddle
    import yaml

    import tests.engine.tiny_train  # noqa: F401 - registers test_tiny_sleepy
    from ppnets.cli.main import main as ppnets_main
    from ppnets.engine import BadImageError, FailFastDataLoader, ImageListDataset, fit
    from ppnets.engine.data import scan_image_folder
    from ppnets.engine.evaluate import evaluate
    from ppnets.engine.transforms import eval_transform
    from ppnets.factory import create_model

    full, decode = os.path.join(work, "full"), os.path.join(work, "decode")
    make_zoo(full)
    make_zoo(decode, header_bad=False)
    weights = os.path.join(work, "tiny.pdparams")
    paddle.save(create_model("test_tiny_sleepy", num_classes=2).state_dict(), weights)
    results: dict = {}

    def case(name, fn):
        t0 = time.perf_counter()
        try:
            outcome = {"ok": True, "value": fn()}
        except BadImageError as exc:
            outcome = {"ok": False, "error": "BadImageError", "files": [p for p, _ in exc.files],
                       "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - recorded for the test to show
            outcome = {"ok": False, "error": type(exc).__name__, "message": str(exc)[-3000:]}
        outcome["seconds"] = round(time.perf_counter() - t0, 2)
        results[name] = outcome
        with open(out_json, "w") as f:
            json.dump(results, f, indent=1)

    def loader(on_bad_image, nw):
        samples, classes = scan_image_folder(os.path.join(full, "train"), "train")
        ds = ImageListDataset(samples, eval_transform(16, 1.0), classes, on_bad_image)
        n = sum(int(y.shape[0]) for _, y in FailFastDataLoader(ds, batch_size=4, num_workers=nw))
        return {"images": n, "unreadable": ds.unreadable()}

    def train(zoo, on_bad_image, nw):
        res = fit(_config(zoo, os.path.join(work, f"run-{on_bad_image}-{nw}"), on_bad_image, nw))
        return {"bad_images": res["bad_images"], "num_train_images": res["num_train_images"]}

    def evaluation(zoo, on_bad_image, nw):
        res = evaluate("test_tiny_sleepy", weights, data_dir=os.path.join(zoo, "val"),
                       num_classes=2, input_size=SIZE, crop_pct=1.0, batch_size=4,
                       num_workers=nw, on_bad_image=on_bad_image)
        return {"bad_images": res["bad_images"], "num_images": res["num_images"]}

    def cli_train(zoo, nw):
        cfg = os.path.join(work, f"cli-{nw}.yaml")
        with open(cfg, "w") as f:
            yaml.safe_dump(_config(zoo, os.path.join(work, f"cli-run-{nw}"), "error", nw), f)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = ppnets_main(["train", "-c", cfg])
        return {"rc": rc, "stderr": err.getvalue()}

    runners = {"loader": loader, "fit": train, "eval": evaluation, "cli-train": cli_train}
    zoos = {"full": full, "decode": decode}
    for name, runner, args in PLAN:
        args = tuple(zoos.get(a, a) if isinstance(a, str) else a for a in args)
        case(name, lambda: runners[runner](*args))
    sys.stdout.flush()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))
    run_cases(sys.argv[1], sys.argv[2])
