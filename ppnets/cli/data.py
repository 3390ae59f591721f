"""``ppnets data check``: every problem of an image data set, before training finds it.

    ppnets data check mine/                    # mine/<class>/*, or mine/train/<class>, val/<class>
    ppnets data check train_list.txt --root /data/imagenet
    ppnets data check cifar-10-python.tar.gz
    ppnets data check /data/imagenet --decode --json imagenet_check.json

Lists unreadable, empty, truncated and non-image files (image names that are not images, and the
files the loader ignores), tiny images, modes converted to RGB, EXIF-rotated photos, empty
classes, classes of train and val that differ, and files of val with the same content as one of
train; for a CIFAR-10 archive the batches, shapes, labels and counts
(:func:`ppnets.engine.datacheck.check_data`). Headers only by default; ``--decode`` decodes every
image as training does. Exit status: 0 nothing to fix (notes only), 1 errors or warnings found,
2 usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Optional, Sequence

from ppnets.engine.datacheck import MIN_SIZE, SEVERITIES, DataCheckReport, check_data
from ppnets.utils import atomic_write_json

from .common import run_command

HELP = "check image data: unreadable, truncated, tiny, rotated, duplicated files..."
DESCRIPTION = ("Check an image data set (class folder, train/ and val/ folders, PaddleClas list "
               "file or CIFAR-10 archive) the way ppnets will read it, and list every problem. "
               "Exit status 0: nothing to fix, 1: errors or warnings, 2: usage error.")

_HEADINGS = {"error": "errors (cannot be used as they are)",
             "warning": "warnings (usable, probably not what you want)",
             "note": "notes (what the loader does)"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("check",), help="check: list every problem of PATH")
    p.add_argument("path", metavar="PATH",
                   help="a folder of class folders, a folder with train/ and val/, a PaddleClas "
                        "list file or a cifar-10-python.tar.gz")
    p.add_argument("--root", default=None,
                   help="folder the list file's paths are relative to (default: its folder)")
    p.add_argument("--decode", action="store_true",
                   help="decode every image (slower; also finds corrupt pixel data)")
    p.add_argument("--min-size", type=int, default=MIN_SIZE,
                   help=f"report images whose shorter side is below this (default {MIN_SIZE})")
    p.add_argument("--image-size", type=int, default=224,
                   help="the network input side, to say what tiny images are upscaled to")
    p.add_argument("--workers", type=int, default=None,
                   help="reading threads (default: 4 per core, 4 to 32)")
    p.add_argument("--json", default=None, metavar="REPORT",
                   help="write the whole report here as JSON (atomically)")


def _shown(path: str, base: str) -> str:
    """``path`` relative to the checked folder (or the list's folder) when inside it."""
    rel = os.path.relpath(path, base)
    return path if rel.startswith("..") else rel


def render(report: DataCheckReport, per_kind: int = 50) -> str:
    """The report as text: summary, then the issues by severity (at most ``per_kind`` files of
    one kind), then the verdict."""
    base = report.path if os.path.isdir(report.path) else os.path.dirname(report.path)
    how = "full decode" if report.decode else "headers only; --decode decodes every image"
    lines = [f"{report.path} ({report.layout.replace('_', ' ')}): {report.files_checked} files "
             f"checked in {report.seconds:.1f} s ({how})"]
    for s in report.splits:
        lines.append(f"  {s.name}: {s.images} images, {s.classes} classes")
    for severity in SEVERITIES:
        issues = [i for i in report.issues if i.severity == severity]
        if not issues:
            continue
        lines += ["", f"{len(issues)} {_HEADINGS[severity]}:"]
        shown: Dict[str, int] = {}
        for issue in issues:
            shown[issue.kind] = shown.get(issue.kind, 0) + 1
            if shown[issue.kind] <= per_kind:
                lines.append(f"  {_shown(issue.path, base)}: {issue.message}")
        for kind, n in shown.items():
            if n > per_kind:   # an ImageNet-size folder has thousands of greyscale JPEGs
                lines.append(f"  ... and {n - per_kind} more of kind {kind!r} (--json lists "
                             "every file)")
    errors, warnings = report.count("error"), report.count("warning")
    lines.append("")
    if report.ok:
        lines.append("OK: nothing to fix")
    else:
        advice = []
        if report.unreadable():
            advice.append("fix or delete the unreadable files, or leave them out with "
                          "-o data.on_bad_image=skip (ppnets train) / --on-bad-image skip "
                          "(ppnets eval)")
        lines.append(f"{errors} errors, {warnings} warnings" +
                     (f": {'; '.join(advice)}" if advice else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        report = check_data(args.path, root=args.root, decode=args.decode,
                            min_size=args.min_size, image_size=args.image_size,
                            workers=args.workers, progress=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        atomic_write_json(args.json, {**report.to_dict(), "command": args.command})
    return 0 if report.ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(__name__, argv, prog="ppnets data")
