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

Before it runs, a notebook's first code cell is set to :data:`INSTALL_CELL`, the install cell
all notebooks share. The executed copy is meant to be committed, so the folders of the machine
that ran it are replaced in its text outputs (:func:`portable_outputs`): this checkout by
``<ppnets checkout>``, the data folder by ``$PPNETS_DATA_DIR``, the temporary folder by
``$TMPDIR`` (a notebook cell's own file by ``<notebook cell>``), the Python environment by
``<site-packages>`` / ``<python env>``, the home folder by ``~``, a Paddle Lite Python
(``PPNETS_PADDLELITE_PYTHON``) by that name. A path that remains is printed as a warning.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import site
import sys
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")

# Every notebook's first code cell (written into each notebook before it runs). ppnets names no
# Paddle build in its requirements (setup.py): a Paddle that is there (AI Studio's GPU build)
# stays, and only a machine without any gets the CPU build through the ``cpu`` extra.
INSTALL_CELL = """\
# ppnets install cell: installs ppnets into this notebook's environment unless it is importable
# already (a checkout installed with `pip install -e ".[dev]"`, CI): then nothing is installed.
# With a Paddle present (AI Studio's GPU build, or one installed from paddlepaddle.org.cn),
# ppnets is installed without Paddle; without one, the `cpu` extra brings the CPU build.
import importlib
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("ppnets") is not None:
    print("ppnets is importable already: nothing to install")
else:
    checkout = os.path.isfile(os.path.join("..", "setup.py"))  # this notebook in a checkout
    if importlib.util.find_spec("paddle") is not None:
        extra = ""
        print("Paddle is installed: installing ppnets without Paddle (yours is kept)")
    else:
        extra = "[cpu]"
        print("no Paddle is installed: installing ppnets with the CPU build (the cpu extra)")
    if checkout:
        target = ["-e", ".." + extra]
    elif extra:
        target = [f"ppnets{extra} @ git+https://github.com/ppnets/ppnets"]
    else:
        target = ["git+https://github.com/ppnets/ppnets"]
    print("pip install", " ".join(target))
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *target])
    if checkout:
        sys.path.insert(0, os.path.abspath(".."))  # an editable install is seen by new kernels only
importlib.invalidate_caches()
import ppnets  # noqa: E402 (imported after the install; also silences Paddle's ccache warning)

print("ppnets", ppnets.__version__, "from", os.path.dirname(ppnets.__file__))"""
INSTALL_MARK = "# ppnets install cell"


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


# An absolute path of a machine (not of AI Studio's documented mount): what a committed
# notebook must not show.
MACHINE_PATH = re.compile(r"(?<![\w.~$<>/-])/(?!home/aistudio\b)(?:work|root|tmp|home|Users|opt|"
                          r"usr|var|mnt|srv)/[^\s'\"),;]*|(?<!<)site-packages(?!>)")
LITE_ENV = "PPNETS_PADDLELITE_PYTHON"


def machine_folders(data_dir: Optional[str]) -> List[Tuple[str, str]]:
    """(folder of this machine, what a committed notebook shows instead), longest first."""
    pairs = [(tempfile.gettempdir(), "$TMPDIR"), (REPO, "<ppnets checkout>"),
             (sys.prefix, "<python env>"), (os.path.expanduser("~"), "~")]
    pairs += [(p, "<site-packages>") for p in site.getsitepackages() + [site.getusersitepackages()]]
    data = data_dir or os.path.join(REPO, "..", "shared", "data")  # the notebooks' default
    pairs.append((data, "$PPNETS_DATA_DIR"))
    lite = os.environ.get(LITE_ENV)
    if lite:
        pairs += [(lite, "$" + LITE_ENV), (os.path.dirname(lite), "<Paddle Lite root>")]
    out = {}
    for folder, label in pairs:
        for variant in {os.path.abspath(folder), os.path.realpath(folder)}:
            if len(variant) > 1:   # never "/"
                out.setdefault(variant.rstrip(os.sep), label)
    return sorted(out.items(), key=lambda kv: -len(kv[0]))


def portable_text(text: str, folders: Sequence[Tuple[str, str]]) -> str:
    """``text`` with each folder of ``folders`` (and a notebook cell's temporary source file)
    replaced by its label; a folder matches only as a whole path component."""
    tmp = os.path.realpath(tempfile.gettempdir())
    for cell_tmp in {tmp, os.path.abspath(tempfile.gettempdir())}:
        text = re.sub(re.escape(cell_tmp) + r"/ipykernel_\d+/\d+\.py", "<notebook cell>", text)
    for folder, label in folders:
        text = re.sub(re.escape(folder) + r"(?![\w-]|\.\w)", lambda _: label, text)
    return text


def portable_outputs(nb, folders: Sequence[Tuple[str, str]]) -> List[str]:
    """Replace the machine's folders in every text output of ``nb`` (in place); returns the
    absolute paths that remain (:data:`MACHINE_PATH`)."""
    left = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts = [(out, key) for key in ("text", "traceback", "evalue") if key in out]
            texts += [(out["data"], mime) for mime in out.get("data", {})
                      if mime.startswith("text/")]
            for holder, key in texts:
                value = holder[key]
                if isinstance(value, list):
                    holder[key] = [portable_text(v, folders) for v in value]
                    left += MACHINE_PATH.findall("".join(holder[key]))
                else:
                    holder[key] = portable_text(value, folders)
                    left += MACHINE_PATH.findall(holder[key])
    return left


def set_install_cell(nb) -> None:
    """Make the first code cell :data:`INSTALL_CELL` (it must be an install cell already)."""
    first = next(c for c in nb.cells if c.cell_type == "code")
    if INSTALL_MARK not in first.source:
        raise SystemExit(f"error: the first code cell is not the install cell ({INSTALL_MARK!r})")
    first.source = INSTALL_CELL


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
    set_install_cell(nb)
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
    left = portable_outputs(nb, machine_folders(data_dir))
    if left:
        print(f"warning: {os.path.basename(path)} still shows paths of this machine: "
              f"{sorted(set(left))[:10]}", flush=True)
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
