"""What every notebook in ``notebooks/`` shares: its parameters and its provenance.

    from ppnets import notebook as nb
    SMOKE, DATA_DIR, DEVICE = nb.smoke(), nb.data_dir(), nb.device()
    nb.setup_plots()
    ...
    nb.show_provenance()          # the last cell: machine, date, smoke or full, ppnets commit

* :func:`smoke` -- ``PPNETS_SMOKE=1``: tiny settings that finish in a few minutes on a 2-core
  CPU (what CI runs); otherwise the notebook's full settings.
* :func:`data_dir` -- where the data sets are: ``PPNETS_DATA_DIR`` (a relative path from the
  working folder or the checkout root), else the AI Studio mount
  folder ``/home/aistudio/data`` (a mounted data set appears there as ``data<ID>/``), else
  ``../../shared/data`` relative to the working folder (the notebooks' folder of a checkout that
  has the project's ``shared/data`` beside it); None when none exists.
* :func:`find_data` -- a file or folder by name in the data folder or one level below it (AI
  Studio puts each mounted data set in its own sub-folder).
* :func:`setup_plots` / :func:`plot_history` -- figures readable at a small file size; a
  training history as loss and top-1 curves.

Importing this module also makes ``tqdm.auto`` (the Hugging Face hub's download bars) choose
tqdm's plain text bar quietly where ipywidgets is missing, instead of warning "IProgress not
found" and choosing it anyway.
"""
from __future__ import annotations

import os
import platform
import subprocess
import warnings
from typing import Any, Dict, List, Optional, Sequence

from ppnets.experiments.record import SOURCE_TREE, git_commit
from ppnets.utils import machine_info, utc_now
from ppnets.weights.fetch import offline

__all__ = ["AISTUDIO_DATA", "SHARED_DATA", "smoke", "data_dir", "find_data", "device",
           "setup_plots", "plot_history", "source_state", "provenance", "show_provenance"]

ENV_SMOKE = "PPNETS_SMOKE"
ENV_DATA = "PPNETS_DATA_DIR"
AISTUDIO_DATA = "/home/aistudio/data"
SHARED_DATA = os.path.join("..", "..", "shared", "data")
PLOT_DPI = 90  # readable, and the committed notebooks' images stay small (tens of kB)
FIGSIZE = (8.0, 3.6)


def _plain_progress_bars() -> None:
    """Import ``tqdm.auto`` with exactly its "IProgress not found" warning silenced: without
    ipywidgets it then keeps the plain bar it falls back to, and later imports reuse that."""
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # noqa: F401


_plain_progress_bars()


def smoke() -> bool:
    """True when ``PPNETS_SMOKE`` is 1/true/yes/on."""
    return os.environ.get(ENV_SMOKE, "").strip().lower() in ("1", "true", "yes", "on")


def data_dir(verbose: bool = True) -> Optional[str]:
    """The data folder (absolute), or None with a message saying what was looked for."""
    explicit = os.environ.get(ENV_DATA)
    if explicit:
        # relative: from the working folder, else from the checkout root (the notebooks run in
        # notebooks/, the README's commands from the root)
        for path in (os.path.abspath(explicit), os.path.join(SOURCE_TREE, explicit)):
            if os.path.isdir(path):
                return os.path.abspath(path)
        if verbose:
            print(f"{ENV_DATA}={explicit!r} is not a folder: set it to the folder that holds the "
                  "data sets (e.g. cifar-10-python.tar.gz); cells that need data will skip")
        return None
    for candidate in (AISTUDIO_DATA, SHARED_DATA):
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    if verbose:
        print(f"no data folder: {ENV_DATA} is not set and neither {AISTUDIO_DATA} (AI Studio: "
              f"mount the data set named in notebooks/README.md) nor {SHARED_DATA} exists; "
              "cells that need data will skip")
    return None


def find_data(names: Sequence[str], root: Optional[str], verbose: bool = True) -> Optional[str]:
    """The first of ``names`` found in ``root`` or in one of its sub-folders, else None.

    Earlier names win (list the full data set before a subset)."""
    if root is None:
        return None
    subdirs = sorted(e.path for e in os.scandir(root) if e.is_dir())
    for name in names:
        for folder in [root] + subdirs:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    if verbose:
        print(f"none of {list(names)} is in {root} or its sub-folders; the cells that need it "
              "will skip")
    return None


def device() -> str:
    """``gpu`` when Paddle was built with CUDA and sees a GPU, else ``cpu``; set as Paddle's
    device."""
    import paddle

    use_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    name = "gpu" if use_gpu else "cpu"
    paddle.set_device(name)
    return name


def setup_plots(dpi: int = PLOT_DPI) -> None:
    """Inline figures sized to be read at a moderate resolution (the executed notebooks are
    committed), saved with everything drawn inside them (``bbox_inches="tight"``, as Jupyter's
    inline display does)."""
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "figure.figsize": FIGSIZE,
                         "font.size": 9, "savefig.bbox": "tight"})


def plot_history(history: List[Dict[str, Any]], title: str):
    """Train loss and validation top-1 (%) per epoch (``fit(...)["history"]``), with markers
    and the values written beside the points when there are only a few (a smoke run's single
    epoch is one point per curve, and says so). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    top1 = [None if h.get("val_top1") is None else 100 * h["val_top1"] for h in history]
    fig, axes = plt.subplots(1, 2, layout="constrained")
    for ax, values, label, fmt in ((axes[0], [h.get("train_loss") for h in history],
                                    "train loss", "{:.3f}"),
                                   (axes[1], top1, "validation top-1 (%)", "{:.1f}")):
        ax.plot(epochs, values, marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(x=0.08, y=0.2)   # room for the values written above the points
        if len(epochs) <= 5:
            for x, y in zip(epochs, values):
                if y is not None:
                    ax.annotate(fmt.format(y), (x, y), textcoords="offset points",
                                xytext=(0, 6), ha="center")
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    if len(epochs) == 1:
        title += "\n(one epoch: one point per curve)"
    fig.suptitle(title)
    return fig


def source_state(repo: str = SOURCE_TREE) -> str:
    """The commit of the ppnets checkout and whether it has local changes outside
    ``notebooks/`` (executing the notebooks rewrites them, which says nothing about the code)."""
    git = git_commit(repo)
    if git is None:
        return "not a git checkout"
    status = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", ".",
                             ":(exclude)notebooks"], capture_output=True, text=True, timeout=10)
    dirty = bool(status.stdout.strip()) or status.returncode != 0
    return git["commit"] + (" (local changes outside notebooks/)" if dirty else "")


def provenance(smoke_run: Optional[bool] = None) -> Dict[str, Any]:
    """Where and when this notebook ran: machine, date (UTC), smoke or full, ppnets commit."""
    import paddle

    import ppnets

    m = machine_info(device=device())
    return {
        "date_utc": utc_now(),
        "run": "smoke (PPNETS_SMOKE=1)" if (smoke() if smoke_run is None else smoke_run)
        else "full",
        "machine": f"{m['cpu_model']} ({m['available_cores']} of {m['logical_cores']} cores "
                   f"available), {m['memory_gib']} GiB",
        "gpu": m["gpu"],
        "load_avg": m["load_avg"],
        "ppnets": f"{ppnets.__version__} from {os.path.dirname(ppnets.__file__)}",
        "ppnets_commit": source_state(),
        "paddle": paddle.__version__,
        "weights_hub": "offline (HF_HUB_OFFLINE or PPNETS_OFFLINE set)" if offline() else
        "online allowed",
        "python": platform.python_version(),
        "data_dir": data_dir(verbose=False),
    }


def show_provenance(smoke_run: Optional[bool] = None) -> Dict[str, Any]:
    """Print :func:`provenance` one item a line; returns it."""
    info = provenance(smoke_run)
    print("Provenance of this run")
    for key, value in info.items():
        print(f"  {key:14s} {value}")
    return info
