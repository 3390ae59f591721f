"""Child process of :mod:`ppnets.bench.peers`: runs what must not share a process with paddle.

Run as a script (``python _peer_child.py TASK REQUEST.json RESULT.json``), so that its folder,
not the ppnets package, is on ``sys.path``: it imports the framework-free ``timing`` module
beside it (the harness's own timing loop and statistics) and never imports paddle.

Tasks:
* ``torch``: a reference model (timm or torchvision, random weights) in PyTorch eager mode,
  ``torch.set_num_threads(threads)``, timed on the given input under ``torch.inference_mode()``;
* ``sgemm``: float32 ``numpy.matmul`` of two n x n matrices (peak-compute reference); the
  thread count is fixed by the parent through the BLAS/OpenMP environment variables.
"""
import json
import platform
import sys

import numpy as np
from timing import latency_stats, time_calls


def run_torch(req):
    import torch

    torch.set_num_threads(int(req["threads"]))
    ref = req["reference"]
    if ref.get("lib", "timm") == "timm":
        import timm
        model = timm.create_model(ref["name"], pretrained=False, num_classes=1000)
        lib_version = timm.__version__
    elif ref["lib"] == "torchvision":
        import torchvision
        model = getattr(torchvision.models, ref["name"])(weights=None)
        lib_version = torchvision.__version__
    else:
        raise ValueError(f"unknown reference library {ref['lib']!r} (expected timm or "
                         "torchvision)")
    model.eval()
    x = torch.from_numpy(np.load(req["input"]))

    def step():
        with torch.inference_mode():
            out = model(x)
        (out[0] if isinstance(out, (tuple, list)) else out).numpy()

    samples = time_calls(step, int(req["warmup"]), int(req["repeats"]))
    params = sum(p.numel() for p in model.parameters())
    return {"latency_ms": latency_stats(samples), "params": int(params),
            "framework": f"torch {torch.__version__}", "library": f"{ref.get('lib', 'timm')} "
            f"{lib_version}", "torch_threads": torch.get_num_threads()}


def run_sgemm(req):
    n = int(req["n"])
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    samples = time_calls(lambda: np.matmul(a, b, out=out), int(req["warmup"]),
                         int(req["repeats"]))
    stats = latency_stats(samples)
    return {"latency_ms": stats, "n": n, "flops_per_s": 2.0 * n ** 3 / (stats["median"] / 1e3),
            "numpy": np.__version__, "python": platform.python_version()}


if __name__ == "__main__":
    task, req_path, out_path = sys.argv[1:4]
    with open(req_path, encoding="utf-8") as f:
        request = json.load(f)
    result = {"torch": run_torch, "sgemm": run_sgemm}[task](request)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
