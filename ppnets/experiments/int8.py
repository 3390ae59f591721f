"""The INT8 study: post-training quantization and quantization-aware training with PaddleSlim, measured on
real CIFAR-10 images (ppnets.deploy.quant; docs/deploy.md "INT8"). The command is
``reproduce/int8_quantization.py``; :func:`run_study` with :class:`Int8Options` is the library form.

    python reproduce/int8_quantization.py \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz \
        --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 repvgg_a0 \
        --epochs 3 --qat-epochs 1 --output-dir results/deploy/int8

Per model, each in its own process (PaddleSlim switches Paddle to static mode; :func:`run_study`
starts them, :func:`run_child` is one):

1. FP32: ``ppnets.engine.fit`` from scratch at 32x32 (Adam 1e-3, constant LR, batch 64), then
   the deploy form (``reparameterize_model``) is evaluated on the test split;
2. PTQ: legacy export of the deploy form -> ``quant_post_static`` (hist, per-channel weights),
   calibrated on ``--calib-images`` training images -> top-1 of the INT8-simulated program;
   for re-parameterizable models also per-tensor weights (``abs_max``: the setting in which the
   RepVGG/MobileOne INT8 collapse is usually reported) and PTQ of the *train form* (un-fused
   branches, each quantized separately) as a mitigation probe;
3. QAT: ``paddleslim.QAT`` on the trained model, fine-tuned ``--qat-epochs`` with the engine;
   for re-parameterizable models on the fused deploy form (QAT of the deployed weights,
   the mitigation of Ding et al.'s RepOpt / Chu et al.'s QARepVGG papers in its simplest form).

Writes ``<output-dir>/<model>.json`` and ``<output-dir>/int8_results.json`` + ``.md``. Each
per-model JSON carries its provenance (``run``: machine, git commit, command, times; ``data``:
file, md5, image counts; ``epochs``, ``qat_epochs``, ``max_steps_per_epoch``, the
``steps_per_epoch`` actually run and the ``full_steps_per_epoch`` of the data) and the FP32
model's prediction spread (``fp32_predictions``): a model that predicts one class for every test image is marked
``degenerate`` and its deltas are not reported as results. The table reads its labels from
these fields. The CIFAR-10 subset (4,829 train / 932 test images) is NOT a benchmark:
accuracies are for the before/after comparison only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle

from ppnets.deploy import quant
from ppnets.engine import count_cifar10_images, fit, load_config
from ppnets.engine.checkpoint import load_checkpoint, read_latest
from ppnets.factory import create_model
from ppnets.layers import reparameterize_model
from ppnets.runtime import save_legacy
from ppnets.utils import atomic_write_json, atomic_write_text, file_md5

from .options import ExperimentError
from .record import RunRecord, command_line

__all__ = ["Int8Options", "run_study", "run_child", "collect", "one_model", "prediction_spread",
           "schedule_label", "table"]

REP_FAMILIES = ("repvgg", "mobileone")
BATCH = 64  # FP32 training and QAT batch size
NEAR_CHANCE = 0.15  # CIFAR-10 chance is 0.10: below this, INT8 deltas are within noise
PROGRAM_BATCH = 4  # fixed program batch: the test split (932) and calibration sets divide by it


@dataclass
class Int8Options:
    """The study's settings: the CIFAR-10 archive, the models, FP32 epochs, QAT epochs (0: no
    QAT), a cap on training batches per epoch, the calibration images, the device, the output
    folder, and how it was invoked (``script``, ``command``: one word per item) for the
    records."""

    data_file: str
    models: List[str] = field(default_factory=lambda: ["fasternet_t0", "mobilenetv2_100",
                                                       "shufflenet_v2_x1_0", "repvgg_a0"])
    epochs: int = 3
    qat_epochs: int = 1
    max_steps: Optional[int] = None
    calib_images: int = 256
    device: str = "cpu"
    output_dir: str = "results/deploy/int8"
    script: str = "reproduce/int8_quantization.py"
    command: Sequence[str] = ()


def prediction_spread(model, x, y) -> dict:
    """How many distinct classes the model predicts on ``x`` and the largest share of one."""
    preds = quant.predict_layer(model, x)
    counts = np.bincount(preds, minlength=int(y.max()) + 1)
    return {"distinct_classes": int((counts > 0).sum()),
            "top_class": int(counts.argmax()), "top_class_share": float(counts.max() / len(preds))}


def _common_overrides(opts: Int8Options, name: str) -> List[str]:
    """The recipe of both trainings: Adam 1e-3, constant LR, batch 64, 32x32."""
    common = [f"model.name={name}", f"data.data_file={os.path.abspath(opts.data_file)}",
              f"data.batch_size={BATCH}", "data.eval_batch_size=200", "data.num_workers=0",
              "optim.name=adam", "optim.lr=0.001", "optim.weight_decay=0.0",
              "sched.name=constant", "train.verbose=0", "train.keep_checkpoints=1",
              f"device={opts.device}"]
    if opts.max_steps:
        common.append(f"train.max_steps_per_epoch={opts.max_steps}")
    return common


def _provenance(opts: Int8Options, name: str, fp32_fit: Dict[str, Any], y_test, x_cal
                ) -> Dict[str, Any]:
    """What a per-model record says about its data and schedule."""
    counts = count_cifar10_images(opts.data_file)
    return {"model": name, "epochs": opts.epochs, "qat_epochs": opts.qat_epochs,
            "max_steps_per_epoch": opts.max_steps,
            "steps_per_epoch": fp32_fit["steps_per_epoch"],
            "full_steps_per_epoch": -(-counts["train"] // BATCH),
            "data": {"file": os.path.abspath(opts.data_file), "md5": file_md5(opts.data_file),
                     "train_images": counts["train"], "test_images": counts["test"]},
            "test_images": int(len(y_test)), "calibration_images": int(len(x_cal)),
            "reparameterizable": name.startswith(REP_FAMILIES),
            "fp32_fit_final_top1": fp32_fit.get("final_top1")}


def _ptq(res: Dict[str, Any], variants, exports: str, x_cal, x_test, y_test) -> None:
    """Each PTQ variant (key, model file, params file, weight quantization) into ``res``; a
    failed one is recorded and the others still run."""
    for key, vmf, vpf, wq in variants:
        try:
            q = quant.ptq(vmf, vpf, os.path.join(exports, key), x_cal, PROGRAM_BATCH,
                          weight_quantize_type=wq)
            q["top1"] = quant.evaluate_program(q["model_dir"], q["model_filename"],
                                               q["params_filename"], x_test, y_test,
                                               PROGRAM_BATCH)
            q["delta_vs_fp32"] = q["top1"] - res["fp32_top1"]
        except Exception as exc:  # noqa: BLE001 - recorded, the others still run
            if not paddle.in_dynamic_mode():
                paddle.disable_static()
            q = {"error": f"{type(exc).__name__}: {str(exc)[-500:]}"}
        res[key] = q


def _qat(opts: Int8Options, name: str, run_dir: str, state, res: Dict[str, Any], x_test,
         y_test) -> Dict[str, Any]:
    """QAT fine-tuning of the trained model (of its fused deploy form when re-parameterizable)."""
    rep = res["reparameterizable"]
    qcfg = load_config(None, _common_overrides(opts, name) + [
        f"train.epochs={opts.qat_epochs}", "optim.lr=0.0001", f"output_dir={run_dir}/qat"])
    try:
        qat_fit, qmodel = quant.qat_fit(qcfg, state, deploy=rep)
        top1 = quant.evaluate_layer(qmodel, x_test, y_test)
        return {"top1": top1, "delta_vs_fp32": top1 - res["fp32_top1"],
                "on": "deploy form (fused)" if rep else "train form",
                "weight_quantize_type": "channel_wise_abs_max",
                "fit_final_top1": qat_fit.get("final_top1")}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[-500:]}"}


def one_model(opts: Int8Options, name: str) -> dict:
    """FP32 training, PTQ variants and QAT of one model; its record (see the module's
    docstring). Run it in a process of its own: PaddleSlim switches Paddle to static mode."""
    run_dir = os.path.join(os.path.abspath(opts.output_dir), "runs", name)
    t0 = time.time()
    record = RunRecord(opts.script, opts.command, device=opts.device, model=name)
    fp32_fit = fit(load_config(None, _common_overrides(opts, name) + [
        f"train.epochs={opts.epochs}", f"output_dir={run_dir}/fp32"]))
    ckpt = os.path.join(run_dir, "fp32", "checkpoints")
    state, _, _ = load_checkpoint(ckpt, read_latest(ckpt))
    x_test, y_test = quant.cifar10_arrays("test", opts.data_file)
    x_cal, _ = quant.cifar10_arrays("train", opts.data_file, limit=opts.calib_images)

    def build(deploy: bool):
        m = create_model(name, num_classes=10)
        m.set_state_dict(state)
        m.eval()
        if deploy:
            reparameterize_model(m)
        return m

    res = _provenance(opts, name, fp32_fit, y_test, x_cal)
    train_form = build(False)
    res["fp32_train_form_top1"] = quant.evaluate_layer(train_form, x_test, y_test)
    deploy_form = build(True)
    res["fp32_top1"] = quant.evaluate_layer(deploy_form, x_test, y_test)
    res["fp32_predictions"] = prediction_spread(deploy_form, x_test, y_test)
    res["degenerate"] = res["fp32_predictions"]["distinct_classes"] == 1

    exports = os.path.join(run_dir, "export")
    mf, pf = save_legacy(deploy_form, (3, 32, 32), PROGRAM_BATCH,
                         os.path.join(exports, "fp32_deploy"))
    res["fp32_program_top1"] = quant.evaluate_program(os.path.dirname(mf), "model.pdmodel",
                                                      "model.pdiparams", x_test, y_test,
                                                      PROGRAM_BATCH)
    variants = [("ptq_deploy_per_channel", mf, pf, "channel_wise_abs_max")]
    if res["reparameterizable"]:
        variants.append(("ptq_deploy_per_tensor", mf, pf, "abs_max"))
        tmf, tpf = save_legacy(train_form, (3, 32, 32), PROGRAM_BATCH,
                               os.path.join(exports, "fp32_train"))
        variants.append(("ptq_train_form_per_channel", tmf, tpf, "channel_wise_abs_max"))
    _ptq(res, variants, exports, x_cal, x_test, y_test)
    if opts.qat_epochs > 0:
        res["qat"] = _qat(opts, name, run_dir, state, res, x_test, y_test)
    res["seconds"] = round(time.time() - t0, 1)
    record.finish()
    res["run"] = record.data
    return res


def _fmt(v):
    return "n/a" if v is None else f"{100 * v:.1f}"


def schedule_label(r: dict) -> str:
    """'full epochs, 76 steps each' or '40 of 76 steps/epoch', from the record's fields."""
    if "full_steps_per_epoch" not in r:
        raise ValueError(f"{r.get('source', r['model'])}: no steps_per_epoch fields; this record "
                         "predates the provenance fields -- rerun the model")
    if r["steps_per_epoch"] < r["full_steps_per_epoch"]:
        return f"{r['steps_per_epoch']} of {r['full_steps_per_epoch']} steps/epoch"
    return f"full epochs, {r['steps_per_epoch']} steps each"


def table(results) -> str:
    lines = ["| model | FP32 epochs + QAT epochs | FP32 top-1 (deploy) | PTQ per-channel | "
             "PTQ per-tensor | PTQ train form | QAT |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r and "fp32_top1" not in r:
            lines.append(f"| {r['model']} | | failed: {r['error'][:80]} | | | | |")
            continue

        def cell(key):
            q = r.get(key)
            if not q:
                return "-"
            if "error" in q:
                return "error"
            return f"{_fmt(q['top1'])} ({100 * q['delta_vs_fp32']:+.1f})"
        proto = f"{r['epochs']} + {r['qat_epochs']} ({schedule_label(r)})"
        if r.get("degenerate"):
            lines.append(f"| {r['model']} | {proto} | {_fmt(r['fp32_top1'])} | degenerate "
                         "(constant prediction): deltas meaningless | | | |")
            continue
        fp32 = _fmt(r["fp32_top1"]) + (" (near chance)" if r["fp32_top1"] < NEAR_CHANCE else "")
        lines.append(f"| {r['model']} | {proto} | {fp32} | "
                     f"{cell('ptq_deploy_per_channel')} "
                     f"| {cell('ptq_deploy_per_tensor')} | {cell('ptq_train_form_per_channel')} "
                     f"| {cell('qat')} |")
    return "\n".join(lines)


def _write_report(output_dir: str, command: Sequence[str], results: List[dict]
                  ) -> Dict[str, Any]:
    report = {"command": command_line(command), "results": results}
    atomic_write_json(os.path.join(output_dir, "int8_results.json"), report)
    atomic_write_text(os.path.join(output_dir, "int8_results.md"), table(results) + "\n")
    return report


def collect(folders: Sequence[str], output_dir: str, command: Sequence[str] = ()
            ) -> Dict[str, Any]:
    """Tabulate the per-model JSONs already in ``folders`` (e.g. after an interrupted run) into
    ``output_dir/int8_results.{json,md}``; returns the report."""
    results = []
    for folder in folders:
        for fname in sorted(os.listdir(folder)):
            if fname.endswith(".json") and not fname.startswith("int8_results"):
                with open(os.path.join(folder, fname), encoding="utf-8") as f:
                    r = json.load(f)
                r["source"] = os.path.join(folder, fname)
                results.append(r)
    return _write_report(output_dir, command, results)


def run_child(request_path: str) -> None:
    """One model of :func:`run_study`, in its own process: the request holds the options and
    the model; the record goes to ``<output_dir>/<model>.json``."""
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    name = request.pop("model")
    opts = Int8Options(**request)
    atomic_write_json(os.path.join(opts.output_dir, f"{name}.json"), one_model(opts, name))


def _model_in_child(opts: Int8Options, name: str) -> dict:
    """:func:`one_model` in a fresh Python (PaddleSlim leaves Paddle in static mode)."""
    code = "import sys; from ppnets.experiments.int8 import run_child; run_child(sys.argv[1])"
    with tempfile.TemporaryDirectory(prefix="ppnets-int8-") as tmp:
        request = os.path.join(tmp, "request.json")
        atomic_write_json(request, dict(asdict(opts), command=list(opts.command), model=name))
        proc = subprocess.run([sys.executable, "-c", code, request], cwd=os.getcwd())
    path = os.path.join(opts.output_dir, f"{name}.json")
    if proc.returncode == 0 and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {"model": name, "error": f"child exited {proc.returncode}"}


def run_study(opts: Int8Options) -> Dict[str, Any]:
    """Every model of ``opts``, each in its own process, then the table
    (``int8_results.json``/``.md`` in ``opts.output_dir``); returns the report."""
    if not opts.data_file:
        raise ExperimentError("the study trains on CIFAR-10: give the archive (--data-file "
                              "cifar-10-python.tar.gz)")
    if not os.path.isfile(opts.data_file):
        raise ExperimentError(f"{opts.data_file} not found (a CIFAR-10 archive in the official "
                              "layout)")
    os.makedirs(opts.output_dir, exist_ok=True)
    results = []
    for name in opts.models:
        results.append(_model_in_child(opts, name))
        print(table(results[-1:]).splitlines()[-1], flush=True)
    report = _write_report(opts.output_dir, opts.command, results)
    print(table(results))
    return report


if __name__ == "__main__":
    print("error: python -m ppnets.experiments.int8 is now `python reproduce/int8_quantization.py "
          "...` (the same options)", file=sys.stderr)
    sys.exit(2)
