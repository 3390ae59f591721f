"""Execute the notebooks in place (outputs written into the .ipynb files) with nbclient.

    python scripts/run_notebooks.py --smoke --data-dir ../shared/data          # every notebook
    python scripts/run_notebooks.py --smoke fasternet_pconv shufflenetv2_guidelines
    python scripts/run_notebooks.py --smoke --output-dir /tmp/nb spconv_cifar10   # copies

Each notebook runs top to bottom in a fresh ``python3`` kernel of this interpreter, in
``notebooks/`` (relative paths such as ``../configs`` resolve there), with ``PPNETS_SMOKE``
and ``PPNETS_DATA_DIR`` set as given and this checkout first on ``PYTHONPATH`` (so the kernel
imports the ppnets of this tree, whatever is installed). A cell error stops that notebook, is
printed, and makes the exit status 1; the notebook is then left unchanged. Needs the ``dev``
extra (nbclient, nbformat, ipykernel).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from typing import List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")


def notebook_paths(names: Sequence[str] = ()) -> List[str]:
    """``notebooks/<name>.ipynb`` for each name (all notebooks when none is given)."""
    if not names:
        return sorted(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")))
    paths = []
    for name in names:
        stem = os.path.splitext(os.path.basename(name))[0]
        path = os.path.join(NOTEBOOKS, stem + ".ipynb")
        if not os.path.isfile(path):
            known = [os.path.basename(p)[:-6] for p in notebook_paths()]
            raise SystemExit(f"error: no notebook {path}; the notebooks are {known}")
        paths.append(path)
    return paths


def kernel_env(smoke: bool, data_dir: Optional[str]) -> dict:
    env = dict(os.environ, PPNETS_SMOKE="1" if smoke else "0",
               PYTHONPATH=os.pathsep.join([REPO] + [p for p in os.environ.get(
                   "PYTHONPATH", "").split(os.pathsep) if p]))
    if data_dir:
        env["PPNETS_DATA_DIR"] = os.path.abspath(data_dir)
    else:
        env.pop("PPNETS_DATA_DIR", None)
    return env


def execute(path: str, out_path: str, smoke: bool, data_dir: Optional[str],
            timeout: int) -> float:
    """Run ``path`` and write the executed notebook to ``out_path``; returns the seconds taken.
    Raises nbclient's CellExecutionError (or a timeout) on the first failing cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": NOTEBOOKS}})
    saved = dict(os.environ)
    env = kernel_env(smoke, data_dir)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this environment
    start = time.time()
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.time() - start
    nb.metadata.pop("widgets", None)
    tmp = out_path + ".tmp"
    nbformat.write(nb, tmp)
    os.replace(tmp, out_path)
    return seconds


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="notebook names (default: all in notebooks/)")
    p.add_argument("--smoke", action="store_true",
                   help="PPNETS_SMOKE=1: tiny settings (minutes on a 2-core CPU)")
    p.add_argument("--data-dir", default=os.environ.get("PPNETS_DATA_DIR"),
                   help="PPNETS_DATA_DIR for the notebooks (default: the environment's; unset: "
                        "each notebook looks for the AI Studio mount or ../../shared/data)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument("--output-dir", default=None,
                   help="write the executed notebooks here instead of in place")
    args = p.parse_args(argv)
    if args.data_dir and not os.path.isdir(args.data_dir):
        print(f"error: --data-dir {args.data_dir} is not a folder", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    failed = []
    for path in notebook_paths(args.names):
        name = os.path.basename(path)
        out = os.path.join(args.output_dir, name) if args.output_dir else path
        if args.output_dir:
            os.makedirs(args.output_dir, exist_ok=True)
        print(f"{name}: running ({'smoke' if args.smoke else 'full'})", flush=True)
        try:
            seconds = execute(path, out, args.smoke, args.data_dir, args.timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            print(f"{name}: FAILED\n{exc}", flush=True)
            failed.append(name)
            continue
        print(f"{name}: done in {seconds:.0f} s -> {os.path.relpath(out)}", flush=True)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
