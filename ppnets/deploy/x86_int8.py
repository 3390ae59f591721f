"""INT8 artifacts of an export folder for x86 CPUs (VNNI): static post-training quantization
calibrated on real, eval-preprocessed images.

    from ppnets.deploy.x86_int8 import calibration_set, quantize_export
    x, source = calibration_set("exports/mnv2", "val_list.txt", count=100)
    entry = quantize_export("exports/mnv2", x, source)

writes, beside the fp32 artifacts of ``ppnets export``:

* ``int8/onnx/model.onnx``: ONNX Runtime static quantization of ``onnx/model.onnx`` in QDQ
  format (run by :mod:`ppnets.runtime`'s ``onnxruntime`` and ``openvino`` at ``int8``):
  the graph is first pre-processed (``quant_pre_process``: shape inference and fusions), then
  weights are quantized per output channel to signed 8 bits and activations per tensor to
  unsigned 8 bits from their min/max over the calibration images. Unsigned activations because
  u8 x s8 is the VNNI fast path: on MobileNetV2 (the real weights, 100 calibration images)
  signed activations gave the same top-1 and ran 1.6x slower in ONNX Runtime;
* ``int8/paddle/model.pdmodel`` + ``.pdiparams``: PaddleSlim ``quant_post_static`` of
  ``legacy/model.pdmodel`` (:func:`ppnets.deploy.quant.ptq`: per-channel weights, histogram
  activation ranges, quantize/dequantize ops), run by Paddle Inference with oneDNN INT8. Each
  convolution bias is first handed to its addition as the 1-D parameter, so that oneDNN fuses
  it into the INT8 convolution (:func:`quantize_legacy_program`). PaddleSlim switches Paddle to
  static mode and a failure can leave it there, so this runs in a child process;
* ``int8/calibration.json``: which images calibrated (source, list, count, paths) and how they
  were preprocessed;
* an ``int8`` entry in ``export.json`` (one record per target; written atomically under a file
  lock, so concurrent writers do not lose each other's entries).

A target that fails is recorded in the entry with its error (``status: failed``), the others
are still written. The calibration images must be preprocessed exactly as evaluation
preprocesses them (:func:`calibration_set` does, with the eval preprocessing of the export's
weights: ``ppnets.engine.predict.export_preprocessing``).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import filelock
import numpy as np

from ppnets.engine import ImageListDataset, eval_transform
from ppnets.engine.evaluate import preprocessing_record
from ppnets.engine.predict import export_preprocessing
from ppnets.utils import atomic_write_json, utc_now

__all__ = ["INT8_TARGETS", "ONNX_QUANTIZATION", "PADDLE_PTQ", "calibration_set", "eval_images",
           "quantize_export", "quantize_legacy_program"]

INT8_TARGETS = ("onnx", "paddle")
# The ONNX Runtime settings (module docstring); recorded in every entry.
ONNX_QUANTIZATION = {"quant_format": "QDQ", "per_channel": True, "weight_type": "QInt8",
                     "activation_type": "QUInt8", "calibrate_method": "MinMax",
                     "reduce_range": False, "pre_process": "quant_pre_process"}
PADDLE_PTQ = {"algo": "hist", "weight_quantize_type": "channel_wise_abs_max",
              "onnx_format": True}
# How many calibration images quantize_export's own check runs through fp32 and int8.
CHECK_IMAGES = 32
PADDLE_TIMEOUT_S = 1800

_EXPORT_COMMAND = "ppnets export --model MODEL --pretrained W --formats paddle onnx --output-dir {}"

# Runs quantize_legacy_program in a fresh process (PaddleSlim may leave Paddle in static mode).
# argv: calibration .npz, model file, params file, out dir, batch size.
_PADDLE_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from ppnets.deploy.x86_int8 import quantize_legacy_program
    calib, model_file, params_file, out_dir, batch = sys.argv[1:6]
    with np.load(calib) as saved:
        x = saved["x"]
    rec = quantize_legacy_program(model_file, params_file, out_dir, x, int(batch))
    print("PTQ_RESULT " + json.dumps(rec))
""")


# --------------------------------------------------------------------------- calibration
def _export_report(export_dir: str) -> Dict[str, Any]:
    path = os.path.join(export_dir, "export.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: quantize_export expects an export folder "
                                f"written by `{_EXPORT_COMMAND.format(export_dir)}`")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def eval_images(export_dir: str, list_file: str, root: Optional[str] = None,
                limit: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """The images of a PaddleClas list file (``relative/path label`` per line, paths relative
    to ``root``, default the list's folder; the first ``limit`` when given), preprocessed with
    the eval preprocessing of the export's weights (``ppnets.engine.predict
    .export_preprocessing``): ``(float32 NCHW array, int64 labels, source)``; ``source`` names
    the list, the images and the preprocessing."""
    pre = preprocessing_record(export_preprocessing(export_dir)[0])
    transform = eval_transform(pre["input_size"], pre["crop_pct"], pre["interpolation"],
                               pre["mean"], pre["std"])
    ds = ImageListDataset.from_list(list_file, root, transform)
    count = len(ds) if limit is None else int(limit)
    if len(ds) < count or count < 1:
        raise ValueError(f"{list_file} lists {len(ds)} images; asked for the first {count}")
    root = os.path.abspath(root or os.path.dirname(list_file))
    xs, ys = zip(*(ds[i] for i in range(count)))
    source = {"list": os.path.abspath(list_file), "root": root, "selection": f"first {count}",
              "count": count, "images": [os.path.relpath(p, root) for p, _ in ds.samples[:count]],
              "preprocessing": pre}
    return (np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64).reshape(-1),
            source)


def calibration_set(export_dir: str, list_file: str, count: int = 100,
                    root: Optional[str] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """The first ``count`` images of a list file, eval-preprocessed (:func:`eval_images`), as
    ``(float32 NCHW array, source)``; ``source`` is what :func:`quantize_export` records in
    ``int8/calibration.json``."""
    x, _, source = eval_images(export_dir, list_file, root, count)
    return x, source


def _calibration_array(calibration: Union[Sequence[np.ndarray], np.ndarray],
                       report: Dict[str, Any]) -> np.ndarray:
    """``calibration`` as one float32 NCHW array of the export's input size, padded to a whole
    number of the export's (fixed) batches."""
    x = np.asarray(np.stack(calibration) if not isinstance(calibration, np.ndarray)
                   else calibration, dtype=np.float32)
    size = tuple(report["input_size"])
    batch = int(report.get("batch_size", 1))
    if x.ndim == len(size) + 2 and x.shape[1] == 1 and x.shape[2:] == size:
        x = x.reshape(-1, *size)   # a list of single-image batches
    if x.ndim != len(size) + 1 or tuple(x.shape[1:]) != size:
        raise ValueError(f"calibration images have shape {list(x.shape)}; the export takes "
                         f"[N, {', '.join(map(str, size))}] (preprocessed with the weights' "
                         "eval transform: calibration_set does it)")
    if len(x) == 0:
        raise ValueError("no calibration images: give at least one")
    # Every stated image is used: the last batch is filled with the first images again
    # (repeats change no min/max, and no image outside the stated set is seen).
    missing = -len(x) % batch
    return np.concatenate([x, np.resize(x, (missing, *x.shape[1:]))]) if missing else x


# --------------------------------------------------------------------------- ONNX Runtime
def _ort_session(path: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def _batches(x: np.ndarray, batch: int):
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def _agreement(fp32_file: str, int8_file: str, x: np.ndarray, batch: int) -> Dict[str, Any]:
    """Top-1 agreement and relative L2 difference of the int8 model's logits with the fp32
    model's, both in ONNX Runtime, on ``x``."""
    ref_sess, q_sess = _ort_session(fp32_file), _ort_session(int8_file)
    name = ref_sess.get_inputs()[0].name
    ref = np.concatenate([ref_sess.run(None, {name: b})[0] for b in _batches(x, batch)])
    out = np.concatenate([q_sess.run(None, {name: b})[0] for b in _batches(x, batch)])
    ref2, out2 = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
    return {"images": int(len(x)),
            "top1_agreement": float((ref2.argmax(1) == out2.argmax(1)).mean()),
            "relative_l2_diff": float(np.linalg.norm(out2 - ref2) / np.linalg.norm(ref2))}


def _quantize_onnx(export_dir: str, x: np.ndarray, batch: int, out_dir: str) -> Dict[str, Any]:
    try:
        import onnxruntime
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        return {"status": "not_run", "reason": f"onnxruntime does not import here ({exc}); "
                                               'pip install "ppnets[onnx]"'}
    fp32_file = os.path.join(export_dir, "onnx", "model.onnx")
    if not os.path.isfile(fp32_file):
        return {"status": "not_run", "reason": f"{fp32_file} is missing: export with "
                                               f"`{_EXPORT_COMMAND.format(export_dir)}`"}
    name = _ort_session(fp32_file).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(_batches(x, batch))

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {name: b}

    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, "model.onnx")
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".quantize-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        quant_pre_process(fp32_file, pre)
        staged = os.path.join(tmp, "model.onnx")
        quantize_static(pre, staged, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, reduce_range=False)
        os.replace(staged, target)
    rec = {"status": "written", "file": os.path.relpath(target, export_dir),
           "source": "onnx/model.onnx", "quantizer": f"onnxruntime {onnxruntime.__version__}",
           "settings": dict(ONNX_QUANTIZATION)}
    rec["check_on_calibration_images"] = _agreement(fp32_file, target, x[:CHECK_IMAGES], batch)
    return rec


# --------------------------------------------------------------------------- PaddleSlim
def _replace_folder(staged: str, target: str) -> None:
    """Move the folder ``staged`` onto ``target`` (an old ``target`` is moved aside first and
    removed after, so a reader never sees a half-written program)."""
    old = f"{target}.old-{uuid.uuid4().hex[:8]}"
    if os.path.exists(target):
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)


def _child_env() -> Dict[str, str]:
    """This environment, with the folder this ppnets is imported from first on PYTHONPATH (a
    checkout that is not installed, e.g. run as ``python reproduce/x.py``)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=here + (os.pathsep + path if path else ""))


def _quantize_paddle(export_dir: str, x: np.ndarray, batch: int, out_dir: str,
                     python: Optional[str], timeout_s: float) -> Dict[str, Any]:
    model_file = os.path.join(export_dir, "legacy", "model.pdmodel")
    params_file = os.path.join(export_dir, "legacy", "model.pdiparams")
    if not os.path.isfile(model_file):
        return {"status": "not_run", "reason": f"{model_file} is missing: export with "
                                               f"`{_EXPORT_COMMAND.format(export_dir)}`"}
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staged = tempfile.mkdtemp(dir=parent, prefix=".paddle-")
    try:
        calib = os.path.join(staged, "calibration.npz")
        np.savez(calib, x=x)
        quantized = os.path.join(staged, "model")
        cmd = [python or sys.executable, "-c", _PADDLE_CHILD, calib, model_file, params_file,
               quantized, str(batch)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env=_child_env())
        except subprocess.TimeoutExpired:
            return {"status": "failed", "error": f"PaddleSlim PTQ did not finish in "
                                                 f"{timeout_s:.0f} s"}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PTQ_RESULT ")]
        if proc.returncode != 0 or not lines:
            return {"status": "failed",
                    "error": f"PaddleSlim PTQ exited with {proc.returncode}: "
                             f"{(proc.stderr or proc.stdout)[-1500:]}"}
        _replace_folder(quantized, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    ptq = json.loads(lines[-1][len("PTQ_RESULT "):])
    import paddle   # the parent's Paddle is the one that will run the program

    return {"status": "written", "file": os.path.relpath(os.path.join(out_dir, "model.pdmodel"),
                                                         export_dir),
            "params_file": os.path.relpath(os.path.join(out_dir, "model.pdiparams"), export_dir),
            "source": "legacy/model.pdmodel", "quantizer": f"paddleslim quant_post_static "
                                                           f"(paddle {paddle.__version__})",
            "settings": {k: ptq[k] for k in ("algo", "weight_quantize_type", "onnx_format")},
            "bias_reshapes_folded": ptq["bias_reshapes_folded"],
            "calibration_images": ptq["calibration_images"]}


def _fold_bias_reshapes(program) -> int:
    """Give each convolution's bias to its ``elementwise_add`` as the 1-D parameter with
    ``axis=1`` instead of ``reshape2(bias) -> [1, C, 1, 1]`` with ``axis=-1`` (how the legacy
    export writes it); returns how many were folded. Paddle's ``conv_bias_onednn_fuse_pass``
    rejects the reshaped form, and oneDNN INT8 then runs every bias add as a separate quantized
    op: MobileNetV2 ran 4x slower than with the bias fused (9.9 vs 2.4 ms, 1 thread)."""
    block = program.global_block()
    consumers: Dict[str, list] = {}
    for op in block.ops:
        for name in op.input_arg_names:
            consumers.setdefault(name, []).append(op)
    folded = 0
    for index in reversed(range(len(block.ops))):
        op = block.ops[index]
        if op.type != "reshape2":
            continue
        bias, out = op.input("X")[0], op.output("Out")[0]
        users = consumers.get(out, [])
        if (not block.var(bias).persistable or len(block.var(bias).shape) != 1
                or len(users) != 1 or users[0].type != "elementwise_add"
                or users[0].input("Y") != [out]
                or list(block.var(out).shape) != [1, block.var(bias).shape[0], 1, 1]
                or len(block.var(users[0].input("X")[0]).shape) != 4):
            continue
        users[0]._rename_input(out, bias)
        users[0]._set_attr("axis", 1)
        block._remove_op(index)
        folded += 1
    program._sync_with_cpp()
    return folded


def quantize_legacy_program(model_file: str, params_file: str, out_dir: str, x: np.ndarray,
                            batch_size: int) -> Dict[str, Any]:
    """PaddleSlim PTQ (:func:`ppnets.deploy.quant.ptq`, :data:`PADDLE_PTQ`) of a legacy
    program after :func:`_fold_bias_reshapes`, into ``out_dir/model.pdmodel|pdiparams``.
    Switches Paddle to static mode: run it in its own process (:func:`quantize_export` does)."""
    import paddle

    from .quant import ptq

    folded_dir = out_dir + ".bias_folded"
    paddle.enable_static()
    try:
        with paddle.pir_utils.OldIrGuard():
            exe = paddle.static.Executor(paddle.CPUPlace())
            program, feeds, fetches = paddle.static.load_inference_model(
                os.path.dirname(os.path.abspath(model_file)), exe,
                model_filename=os.path.basename(model_file),
                params_filename=os.path.basename(params_file))
            folded = _fold_bias_reshapes(program)
            paddle.static.save_inference_model(
                os.path.join(folded_dir, "model"),
                [program.global_block().var(f) for f in feeds], fetches, exe, program=program)
    finally:
        paddle.disable_static()
    try:
        rec = ptq(os.path.join(folded_dir, "model.pdmodel"),
                  os.path.join(folded_dir, "model.pdiparams"), out_dir, x, batch_size,
                  weight_quantize_type=PADDLE_PTQ["weight_quantize_type"],
                  algo=PADDLE_PTQ["algo"], onnx_format=PADDLE_PTQ["onnx_format"])
    finally:
        shutil.rmtree(folded_dir, ignore_errors=True)
    return dict(rec, bias_reshapes_folded=folded)


# --------------------------------------------------------------------------- the entry
def _write_entry(export_dir: str, entry: Dict[str, Any]) -> None:
    """Set ``export.json``'s ``int8`` entry, re-reading the file under a lock so that an entry
    written meanwhile by another process is kept."""
    path = os.path.join(export_dir, "export.json")
    with filelock.FileLock(path + ".lock"):
        report = _export_report(export_dir)
        report["int8"] = entry
        atomic_write_json(path, report, strict=True)


def quantize_export(export_dir: str, calibration: Union[Sequence[np.ndarray], np.ndarray],
                    calibration_source: Dict[str, Any],
                    targets: Sequence[str] = INT8_TARGETS, python: Optional[str] = None,
                    paddle_timeout_s: float = PADDLE_TIMEOUT_S) -> Dict[str, Any]:
    """Quantize the export folder ``export_dir`` to INT8 for each of ``targets`` (``onnx``,
    ``paddle``; module docstring), calibrated on ``calibration`` -- eval-preprocessed images,
    an NCHW array or a list of CHW (or 1CHW) arrays -- described by ``calibration_source``
    (e.g. :func:`calibration_set`'s). Returns the ``int8`` entry written to ``export.json``:
    ``{"calibration": "int8/calibration.json", "targets": {target: record}, ...}``, each record
    ``status`` ``written`` / ``failed`` (``error``) / ``not_run`` (``reason``). ``python``: the
    interpreter that runs PaddleSlim (default this one)."""
    unknown = [t for t in targets if t not in INT8_TARGETS]
    if unknown or not targets:
        raise ValueError(f"unknown INT8 targets {unknown or list(targets)}; choose from "
                         f"{list(INT8_TARGETS)}")
    export_dir = os.path.abspath(export_dir)
    report = _export_report(export_dir)
    count = len(calibration)
    x = _calibration_array(calibration, report)
    batch = int(report.get("batch_size", 1))
    int8_dir = os.path.join(export_dir, "int8")
    os.makedirs(int8_dir, exist_ok=True)
    calibration_record = {"source": calibration_source, "count": int(count),
                          "padded_to": int(len(x)),
                          "input_shape": list(x.shape[1:]), "batch_size": batch,
                          "mean_std_of_pixels": [float(x.mean()), float(x.std())],
                          "timestamp_utc": utc_now()}
    atomic_write_json(os.path.join(int8_dir, "calibration.json"), calibration_record, strict=True)
    records: Dict[str, Dict[str, Any]] = {}
    for target in targets:
        try:
            if target == "onnx":
                records[target] = _quantize_onnx(export_dir, x, batch,
                                                 os.path.join(int8_dir, "onnx"))
            else:
                records[target] = _quantize_paddle(export_dir, x, batch,
                                                   os.path.join(int8_dir, "paddle"), python,
                                                   paddle_timeout_s)
        except Exception as exc:  # noqa: BLE001 - recorded in the entry; other targets go on
            records[target] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    entry = {"calibration": "int8/calibration.json", "calibration_images": int(len(x)),
             "targets": records, "timestamp_utc": utc_now()}
    _write_entry(export_dir, entry)
    return entry
