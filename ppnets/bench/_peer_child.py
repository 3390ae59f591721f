"""Child process of :mod:`ppnets.bench.peers`: runs what must not share a process with paddle.

Protocol: ``python _peer_child.py REQUEST.json RESULT.json``; the request is a JSON object whose
``task`` names one of :data:`TASKS` and whose other keys are that task's inputs; the result is
the task's JSON object. Run as a script so that its folder, not the ppnets package, is on
``sys.path``: it imports the framework-free ``timing`` module
beside it (the harness's own timing loop and statistics) and never imports paddle. Every module
in this folder is importable by its bare name here, so none may share a standard-library name
(``profile.py`` once broke torch's ``import cProfile``).

Tasks:
* ``torch``: a reference model (timm or torchvision, seeded random weights, written to
  ``weights_out`` so the parent loads the same weights into ppnets) in its deploy form --
  timm's ``reparameterize_model`` (RepVGG, MobileOne, RepViT, FastViT-style blocks fused),
  then Conv-BN folding by ``torch.fx.experimental.optimization.fuse`` where the model traces --
  in PyTorch eager mode, ``torch.set_num_threads(threads)``, timed on the given input under
  ``torch.inference_mode()``; its output is saved for the parent to compare;
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
    torch.manual_seed(int(req.get("seed", 0)))
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
    from safetensors.torch import save_file
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              req["weights_out"])
    deploy = []
    if ref.get("lib", "timm") == "timm":
        from timm.utils.model import reparameterize_model
        model = reparameterize_model(model)
        deploy.append("timm.utils.model.reparameterize_model")
    try:
        from torch.fx.experimental.optimization import fuse
        model = fuse(model)
        deploy.append("torch.fx.experimental.optimization.fuse (Conv-BN folded)")
    except Exception as exc:  # noqa: BLE001 - untraceable models run with their BNs
        deploy.append(f"no Conv-BN folding (torch.fx could not trace: {type(exc).__name__})")
    x = torch.from_numpy(np.load(req["input"]))
    with torch.inference_mode():
        out = model(x)
    np.save(req["output"], (out[0] if isinstance(out, (tuple, list)) else out).numpy())

    def step():
        with torch.inference_mode():
            out = model(x)
        (out[0] if isinstance(out, (tuple, list)) else out).numpy()

    samples = time_calls(step, int(req["warmup"]), int(req["repeats"]))
    params = sum(p.numel() for p in model.parameters())
    return {"latency_ms": latency_stats(samples), "params": int(params),
            "framework": f"torch {torch.__version__}", "library": f"{ref.get('lib', 'timm')} "
            f"{lib_version}", "torch_threads": torch.get_num_threads(), "deploy_form": deploy}


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


TASKS = {"torch": run_torch, "sgemm": run_sgemm}

if __name__ == "__main__":
    req_path, out_path = sys.argv[1:3]
    with open(req_path, encoding="utf-8") as f:
        request = json.load(f)
    result = TASKS[request.pop("task")](request)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
