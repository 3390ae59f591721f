"""The INT8 study: post-training quantization and quantization-aware training with PaddleSlim, measured on
real CIFAR-10 images (ppnets.deploy.quant; docs/deploy.md "INT8").

    python reproduce/int8_quantization.py \
        --data-file ../shared/data/cifar-10-python-partial.tar.gz \
        --models fasternet_t0 mobilenetv2_100 shufflenet_v2_x1_0 repvgg_a0 \
        --epochs 3 --qat-epochs 1 --output-dir results/deploy/int8

Per model, each in its own process (PaddleSlim switches Paddle to static mode):

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

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from typing import Optional, Sequence

import numpy as np
import paddle

from ppnets.deploy import quant
from ppnets.engine import count_cifar10_images, fit, load_config
from ppnets.engine.checkpoint import load_checkpoint, read_latest
from ppnets.factory import create_model
from ppnets.layers import reparameterize_model
from ppnets.runtime import save_legacy
from ppnets.utils import atomic_write_json, atomic_write_text, file_md5

from .record import RunRecord

__all__ = ["one_model", "prediction_spread", "schedule_label", "table", "main"]

REP_FAMILIES = ("repvgg", "mobileone")
BATCH = 64  # FP32 training and QAT batch size
NEAR_CHANCE = 0.15  # CIFAR-10 chance is 0.10: below this, INT8 deltas are within noise


def prediction_spread(model, x, y) -> dict:
    """How many distinct classes the model predicts on ``x`` and the largest share of one."""
    preds = quant.predict_layer(model, x)
    counts = np.bincount(preds, minlength=int(y.max()) + 1)
    return {"distinct_classes": int((counts > 0).sum()),
            "top_class": int(counts.argmax()), "top_class_share": float(counts.max() / len(preds))}


def one_model(args) -> dict:
    name = args.one
    out = os.path.abspath(args.output_dir)
    run_dir = os.path.join(out, "runs", name)
    t0 = time.time()
    record = RunRecord(args.script, args, [args.script, *args.argv], model=name)
    common = [f"model.name={name}", f"data.data_file={os.path.abspath(args.data_file)}",
              f"data.batch_size={BATCH}", "data.eval_batch_size=200", "data.num_workers=0",
              "optim.name=adam", "optim.lr=0.001", "optim.weight_decay=0.0",
              "sched.name=constant", "train.verbose=0", "train.keep_checkpoints=1",
              f"device={args.device}"]
    if args.max_steps:
        common.append(f"train.max_steps_per_epoch={args.max_steps}")
    cfg = load_config(None, common + [f"train.epochs={args.epochs}",
                                      f"output_dir={run_dir}/fp32"])
    fp32_fit = fit(cfg)
    ckpt = os.path.join(run_dir, "fp32", "checkpoints")
    state, _, _ = load_checkpoint(ckpt, read_latest(ckpt))

    x_test, y_test = quant.cifar10_arrays("test", args.data_file)
    x_cal, _ = quant.cifar10_arrays("train", args.data_file, limit=args.calib_images)
    bs = 4  # fixed program batch: the test split (932) and calibration sets divide by it
    rep = name.startswith(REP_FAMILIES)

    def build(deploy: bool):
        m = create_model(name, num_classes=10)
        m.set_state_dict(state)
        m.eval()
        if deploy:
            reparameterize_model(m)
        return m

    counts = count_cifar10_images(args.data_file)
    res = {"model": name, "epochs": args.epochs, "qat_epochs": args.qat_epochs,
           "max_steps_per_epoch": args.max_steps,
           "steps_per_epoch": fp32_fit["steps_per_epoch"],
           "full_steps_per_epoch": -(-counts["train"] // BATCH),
           "data": {"file": os.path.abspath(args.data_file), "md5": file_md5(args.data_file),
                    "train_images": counts["train"], "test_images": counts["test"]},
           "test_images": int(len(y_test)),
           "calibration_images": int(len(x_cal)), "reparameterizable": rep,
           "fp32_fit_final_top1": fp32_fit.get("final_top1")}
    train_form = build(False)
    res["fp32_train_form_top1"] = quant.evaluate_layer(train_form, x_test, y_test)
    deploy_form = build(True)
    res["fp32_top1"] = quant.evaluate_layer(deploy_form, x_test, y_test)
    res["fp32_predictions"] = prediction_spread(deploy_form, x_test, y_test)
    res["degenerate"] = res["fp32_predictions"]["distinct_classes"] == 1

    exports = os.path.join(run_dir, "export")
    mf, pf = save_legacy(deploy_form, (3, 32, 32), bs, os.path.join(exports, "fp32_deploy"))
    res["fp32_program_top1"] = quant.evaluate_program(os.path.dirname(mf), "model.pdmodel",
                                                      "model.pdiparams", x_test, y_test, bs)
    variants = [("ptq_deploy_per_channel", mf, pf, "channel_wise_abs_max")]
    if rep:
        variants.append(("ptq_deploy_per_tensor", mf, pf, "abs_max"))
        tmf, tpf = save_legacy(train_form, (3, 32, 32), bs, os.path.join(exports, "fp32_train"))
        variants.append(("ptq_train_form_per_channel", tmf, tpf, "channel_wise_abs_max"))
    for key, vmf, vpf, wq in variants:
        try:
            q = quant.ptq(vmf, vpf, os.path.join(exports, key), x_cal, bs,
                          weight_quantize_type=wq)
            q["top1"] = quant.evaluate_program(q["model_dir"], q["model_filename"],
                                               q["params_filename"], x_test, y_test, bs)
            q["delta_vs_fp32"] = q["top1"] - res["fp32_top1"]
        except Exception as exc:  # noqa: BLE001 - recorded, the others still run
            if not paddle.in_dynamic_mode():
                paddle.disable_static()
            q = {"error": f"{type(exc).__name__}: {str(exc)[-500:]}"}
        res[key] = q

    if args.qat_epochs > 0:
        qcfg = load_config(None, common + [f"train.epochs={args.qat_epochs}",
                                           "optim.lr=0.0001", f"output_dir={run_dir}/qat"])
        try:
            qat_fit, qmodel = quant.qat_fit(qcfg, state, deploy=rep)
            top1 = quant.evaluate_layer(qmodel, x_test, y_test)
            res["qat"] = {"top1": top1, "delta_vs_fp32": top1 - res["fp32_top1"],
                          "on": "deploy form (fused)" if rep else "train form",
                          "weight_quantize_type": "channel_wise_abs_max",
                          "fit_final_top1": qat_fit.get("final_top1")}
        except Exception as exc:  # noqa: BLE001
            res["qat"] = {"error": f"{type(exc).__name__}: {str(exc)[-500:]}"}
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


def main(argv: Optional[Sequence[str]] = None,
         script: str = "python -m ppnets.experiments.int8") -> int:
    """The study's command line (``reproduce/int8_quantization.py`` passes its own name as
    ``script``, which the run records name)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=script, description=__doc__.split("\n\n")[0])
    p.add_argument("--data-file", default=None)
    p.add_argument("--models", nargs="+", default=["fasternet_t0", "mobilenetv2_100",
                                                   "shufflenet_v2_x1_0", "repvgg_a0"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="cap train batches per epoch")
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--output-dir", default="results/deploy/int8")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--collect", nargs="+", default=None, metavar="DIR",
                   help="only tabulate the per-model JSONs already in these folders into "
                        "--output-dir/int8_results.{json,md} (e.g. after an interrupted run)")
    p.add_argument("--script", default=script, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # the command the user typed (a child run adds `--script S --one NAME` at the end)
    args.argv = argv[:-4] if args.one else argv
    if args.collect:
        results = []
        for folder in args.collect:
            for fname in sorted(os.listdir(folder)):
                if fname.endswith(".json") and not fname.startswith("int8_results"):
                    with open(os.path.join(folder, fname), encoding="utf-8") as f:
                        r = json.load(f)
                    r["source"] = os.path.join(folder, fname)
                    results.append(r)
        atomic_write_json(os.path.join(args.output_dir, "int8_results.json"),
                          {"command": shlex.join(["python", args.script, *argv]), "results": results})
        atomic_write_text(os.path.join(args.output_dir, "int8_results.md"),
                          table(results) + "\n")
        print(table(results))
        return 0
    if not args.data_file or not os.path.isfile(args.data_file):
        print(f"error: {args.data_file} not found (CIFAR-10 archive in the official layout)",
              file=sys.stderr)
        return 2
    if args.one:
        res = one_model(args)
        atomic_write_json(os.path.join(args.output_dir, f"{args.one}.json"), res)
        return 0
    results = []
    for name in args.models:
        cmd = [sys.executable, "-m", "ppnets.experiments.int8", *argv, "--script", args.script,
               "--one", name]
        proc = subprocess.run(cmd, cwd=os.getcwd())
        path = os.path.join(args.output_dir, f"{name}.json")
        if proc.returncode == 0 and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                results.append(json.load(f))
        else:
            results.append({"model": name, "error": f"child exited {proc.returncode}"})
        print(table(results[-1:]).splitlines()[-1], flush=True)
    report = {"command": shlex.join(["python", args.script, *argv]), "results": results}
    atomic_write_json(os.path.join(args.output_dir, "int8_results.json"), report)
    atomic_write_text(os.path.join(args.output_dir, "int8_results.md"), table(results) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
