"""Runs inside the Python that has ``paddlelite`` (often CPython 3.9 in a chroot; see
scripts/prepare_paddlelite_env.sh). Stdlib + numpy + paddlelite only; never imports ppnets or
paddle. Copied into the exchange folder with ``timing.py`` (ppnets.bench's timing loop) and run
as ``python _lite_child.py REQUEST.json RESULT.json``.

Tasks (``request["task"]``, the keys of ``TASKS``):
* ``info``: paddlelite version;
* ``supported_ops``: ``Opt.print_supported_ops()`` for ``target`` (the listing of
  ``paddle_lite_opt --print_supported_ops=true --valid_targets=TARGET``);
* ``model_ops``: ``Opt.check_if_model_supported(True)`` (``--print_model_ops=true``);
* ``opt``: convert a legacy model to ``.nb`` for ``target`` (``Opt.run()``);
* ``run``: run an ``.nb`` with ``MobileConfig`` on the input in ``input_npz`` -> ``output_npz``
  (``y``: the first output; a multi-output model, e.g. a features-only backbone, also gets
  ``y_0``, ``y_1``, ... for every output);
* ``bench``: time an ``.nb`` (``threads``, ``power_mode``, ``warmup``, ``repeats``) with the
  timing loop of ppnets.bench;
* ``serve``: load the ``.nb`` once, then answer requests on stdin, one JSON line each:
  ``{"op": "run", "input_npy": ..., "output_npz": ...}`` runs the input file and writes the
  outputs (the ``run`` layout), ``{"op": "time", "input_npy": ..., "warmup": ...,
  "repeats": ...}`` times the forward with the timing loop (``samples_s``), ``{"op": "quit"}``
  (or end of input) ends; every reply is one
  JSON line (``{"ok": true}`` or ``{"error": ...}``) on the process's original stdout, while
  whatever Paddle Lite prints goes to stderr (ppnets.deploy.lite's paddle_lite sessions);
* ``batch``: many ``model_ops`` / ``opt`` / ``run`` steps in one process (the zoo check). Each
  step appends ``{"id", "started"}`` and then ``{"id", "result"}`` (or ``"error"`` for a Python
  exception) to the JSON-lines file ``request["progress"]``, so that when Paddle Lite aborts the
  process the caller knows which step did it and can resume after it.
"""
import json
import os
import platform
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _captured(fn):
    """Run ``fn`` with the process's fd 1 and 2 sent to a file (Paddle Lite prints from C++)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(1), os.dup(2)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            value = fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        tmp.seek(0)
        return value, tmp.read().decode("utf-8", "replace")


def _opt(req):
    import paddlelite.lite as lite

    o = lite.Opt()
    if req.get("model_file"):
        o.set_model_file(req["model_file"])
        o.set_param_file(req["param_file"])
    o.set_valid_places(req.get("target", "arm"))
    return o


def _version():
    import paddlelite.lite as lite
    return lite.Opt().version() if hasattr(lite.Opt(), "version") else "unknown"


def task_info(req):
    return {"paddlelite": _version(), "python": platform.python_version(),
            "numpy": np.__version__, "arch": platform.machine()}


def task_supported_ops(req):
    o = _opt(req)
    _, text = _captured(o.print_supported_ops)
    return {"text": text, "paddlelite": _version()}


def task_model_ops(req):
    # check_if_model_supported() ends the process (exit status 0: supported, 1: not), so it
    # runs in a grandchild whose output is captured.
    import subprocess

    code = ("import paddlelite.lite as l; o = l.Opt(); o.set_model_file(%r); "
            "o.set_param_file(%r); o.set_valid_places(%r); o.check_if_model_supported(True)"
            % (req["model_file"], req["param_file"], req.get("target", "arm")))
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    return {"text": proc.stdout.decode("utf-8", "replace"), "returncode": proc.returncode,
            "paddlelite": _version()}


def task_opt(req):
    o = _opt(req)
    o.set_model_type("naive_buffer")
    o.set_optimize_out(req["out_prefix"])
    _, text = _captured(o.run)
    nb = req["out_prefix"] + ".nb"
    return {"ok": os.path.isfile(nb), "nb_file": nb, "log": text[-6000:],
            "paddlelite": _version()}


def _predictor(req):
    import paddlelite.lite as lite

    cfg = lite.MobileConfig()
    cfg.set_model_from_file(req["nb_file"])
    if hasattr(cfg, "set_threads"):
        cfg.set_threads(int(req.get("threads", 1)))
    if req.get("power_mode") and hasattr(cfg, "set_power_mode"):
        cfg.set_power_mode(getattr(lite.PowerMode, req["power_mode"]))
    return lite.create_paddle_predictor(cfg)


def _stage(pred, x):
    inp = pred.get_input(0)
    inp.from_numpy(np.ascontiguousarray(x))


def _outputs(pred):
    """Every output tensor of the predictor, in the program's order."""
    return [pred.get_output(i) for i in range(len(pred.get_output_names()))]


def _save_outputs(path, arrays):
    """``y`` (the first output) and, for several, ``y_0``, ``y_1``, ... (the layout of
    ppnets.deploy's reference_io.npz)."""
    named = {"y": arrays[0]}
    if len(arrays) > 1:
        named.update(("y_%d" % i, a) for i, a in enumerate(arrays))
    np.savez(path, **named)


def task_run(req):
    x = np.load(req["input_npz"])["x"]
    pred = _predictor(req)
    _stage(pred, x)
    pred.run()
    outs = [o.numpy() for o in _outputs(pred)]
    _save_outputs(req["output_npz"], outs)
    return {"output_shape": list(outs[0].shape), "output_shapes": [list(o.shape) for o in outs],
            "paddlelite": _version()}


def task_bench(req):
    from timing import latency_stats, time_calls

    x = np.load(req["input_npz"])["x"]
    pred = _predictor(req)
    _stage(pred, x)
    outs = _outputs(pred)

    def step():
        pred.run()
        for out in outs:
            out.numpy()

    samples = time_calls(step, int(req["warmup"]), int(req["repeats"]))
    if req.get("output_npz"):
        _save_outputs(req["output_npz"], [out.numpy() for out in outs])
    return {"latency_ms": latency_stats(samples), "paddlelite": _version(),
            "python": platform.python_version(), "arch": platform.machine()}


def _serve_run(pred, msg):
    _stage(pred, np.load(msg["input_npy"]))
    pred.run()
    _save_outputs(msg["output_npz"], [o.numpy() for o in _outputs(pred)])
    return {"ok": True}


def _serve_time(pred, msg):
    """Per-repeat seconds of ``pred.run()`` plus reading every output, timed here by
    ppnets.bench's loop, so the file exchange of ``run`` is not in the latency."""
    from timing import time_calls

    _stage(pred, np.load(msg["input_npy"]))

    def step():
        pred.run()
        for out in _outputs(pred):
            out.numpy()

    return {"ok": True, "samples_s": time_calls(step, int(msg["warmup"]), int(msg["repeats"]))}


SERVE_OPS = {"run": _serve_run, "time": _serve_time}


def task_serve(req):
    # Replies travel on the original stdout; fd 1 now points at stderr so that Paddle Lite's own
    # prints cannot corrupt them.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    pred = _predictor(req)
    replies.write(json.dumps({"ready": True, "paddlelite": _version(),
                              "num_outputs": len(pred.get_output_names())}) + "\n")
    replies.flush()
    served = 0
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("op") not in SERVE_OPS:
            break
        try:
            reply = SERVE_OPS[msg["op"]](pred, msg)
            served += 1
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which raises
            reply = {"error": "%s: %s" % (type(exc).__name__, exc)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return {"served": served, "paddlelite": _version()}


# the step kinds of a batch
BATCH_STEPS = {"model_ops": task_model_ops, "opt": task_opt, "run": task_run}


def task_batch(req):
    import time

    with open(req["progress"], "a", encoding="utf-8") as log:
        def note(record):
            log.write(json.dumps(record) + "\n")
            log.flush()
            os.fsync(log.fileno())

        for step in req["steps"]:
            note({"id": step["id"], "started": True})
            t0 = time.time()
            if step["kind"] == "run" and not os.path.isfile(step["nb_file"]):
                note({"id": step["id"], "skipped": "no .nb file (conversion failed)"})
                continue
            try:
                result = BATCH_STEPS[step["kind"]](step)
                note({"id": step["id"], "result": result,
                      "seconds": round(time.time() - t0, 2)})
            except Exception as exc:  # noqa: BLE001 - recorded per step
                note({"id": step["id"], "error": "%s: %s" % (type(exc).__name__, exc),
                      "seconds": round(time.time() - t0, 2)})
    return {"steps": len(req["steps"]), "paddlelite": _version()}


TASKS = {"info": task_info, "supported_ops": task_supported_ops, "model_ops": task_model_ops,
         "opt": task_opt, "run": task_run, "bench": task_bench, "batch": task_batch,
         "serve": task_serve}


def main(req_path, out_path):
    with open(req_path, encoding="utf-8") as f:
        request = json.load(f)
    task = TASKS.get(request["task"])
    if task is None:
        sys.exit("_lite_child.py: unknown task %r; tasks: %s"
                 % (request["task"], ", ".join(sorted(TASKS))))
    result = task(request)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
