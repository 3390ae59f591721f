"""Export a model's deploy form to every runtime ppnets supports, and verify each artifact.

    from ppnets.deploy import export
    report = export("fasternet_t0", formats=("paddle", "onnx", "lite"), out_dir="exports")

For a registry name (or an ``nn.Layer`` plus ``input_size``) the model is put in eval mode and
reparameterized (``ppnets.reparameterize_model``, as ``ppnets.bench`` does), then written as

* ``paddle``: Paddle Inference model, Paddle 3 PIR (``paddle/inference.json`` + ``.pdiparams``,
  by :func:`ppnets.runtime.export_program`), plus the legacy ProgramDesc (``legacy/model.pdmodel``
  + ``.pdiparams``, :func:`ppnets.runtime.save_legacy`) that Paddle Lite and PaddleSlim read;
* ``onnx``: ``onnx/model.onnx`` through ``paddle.onnx.export`` (paddle2onnx), run in ONNX Runtime;
* ``lite``: the op-compatibility report (:mod:`ppnets.deploy.opcheck`), then ``paddle_lite_opt``
  for each target (``lite/model_<target>.nb``); the x86 ``.nb`` is run by the Paddle Lite x86
  runtime, the ARM ``.nb`` cannot be executed on an x86 host and is marked so.

Every executable artifact is run on the same input as the eager deploy-form model and
``verify.json`` beside it records the largest absolute difference, the tolerance and the
verdict. ``export.json`` in ``out_dir`` collects everything.

``features_only=True`` (with ``out_indices``) exports a registry name's features-only backbone
(:class:`ppnets.models.features.FeatureBackbone`; a passed-in backbone is exported as it is):
every artifact is then a multi-output program, one output per feature map, and every output is
verified (:func:`ppnets.runtime.compare_all_outputs`).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
from tqdm import tqdm

from ppnets.engine.evaluate import serving_info
from ppnets.models.features import FeatureBackbone
from ppnets.runtime import (DEFAULT_ATOL, compare_all_outputs, create_predictor, deploy_form,
                            export_onnx, export_program, run_predictor, save_legacy)
from ppnets.utils import atomic_write_json, utc_now

from .lite import EXECUTABLE_TARGETS, LITE_TARGETS, LiteUnavailableError, convert, run_nb
from .opcheck import check_program

__all__ = ["export", "lite_export", "FORMATS", "SCHEMA"]

log = logging.getLogger("ppnets")

FORMATS = ("paddle", "onnx", "lite")
SCHEMA = "ppnets.deploy/1"


def _verify_file(folder: str, record: Dict[str, Any]) -> Dict[str, Any]:
    record = dict(record, timestamp_utc=utc_now())
    atomic_write_json(os.path.join(folder, "verify.json"), record, strict=True)
    return record


def _onnx(model, input_size, batch_size, folder, x, refs, atol, opset):
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "model")
    export_onnx(model, [batch_size, *input_size], prefix, opset)
    rec = {"format": "onnx", "file": prefix + ".onnx", "opset": opset,
           "runtime": None}
    try:
        import onnxruntime as ort
    except ImportError:
        rec.update(status="not_run", reason="onnxruntime is not installed "
                   "(pip install -e '.[onnx]')")
        return _verify_file(folder, rec)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(prefix + ".onnx", sess_options=opts,
                                providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    rec["runtime"] = f"onnxruntime {ort.__version__}"
    rec.update(compare_all_outputs(outs, refs, atol))
    return _verify_file(folder, rec)


def _paddle_inference(model_file, params_file, folder, fmt, x, refs, atol):
    predictor = create_predictor(model_file, params_file, device="cpu", threads=1, mkldnn=True)
    outs = run_predictor(predictor, x)
    rec = {"format": fmt, "file": model_file, "params_file": params_file,
           "runtime": f"paddle_inference {paddle.__version__} (CPU, oneDNN, IR optim on)"}
    rec.update(compare_all_outputs(outs, refs, atol))
    return _verify_file(folder, rec)


def _check_formats(formats: Sequence[str]) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown export formats {unknown or list(formats)}; choose from "
                         f"{list(FORMATS)}")


def _random_weights_record(name: str) -> Dict[str, Any]:
    """The report's ``weights`` for a registry name built without weights; warns as well."""
    log.warning("exporting %s with random weights: pass a model built with "
                "create_model(name, pretrained=...) for useful artifacts", name)
    return {"kind": "random", "warning": "random initialisation: the artifacts compute "
                                         "nothing useful"}


def _reference_io(model: nn.Layer, size: Sequence[int], batch_size: int, seed: int,
                  out_dir: str) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The seeded input and the eager model's outputs, saved as ``reference_io.npz``: ``x``,
    ``y`` (the first output) and, for a multi-output model, ``y_0``, ``y_1``, ... (every one)."""
    x = np.random.default_rng(seed).standard_normal((batch_size, *size)).astype(np.float32)
    with paddle.no_grad():
        out = model(paddle.to_tensor(x))
    refs = [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
    arrays = {"x": x, "y": refs[0]}
    if len(refs) > 1:
        arrays.update({f"y_{i}": r for i, r in enumerate(refs)})
    np.savez(os.path.join(out_dir, "reference_io.npz"), **arrays)
    return x, refs


def _export_artifacts(model: nn.Layer, name: str, size: Sequence[int], batch_size: int,
                      formats: Sequence[str], out_dir: str, x: np.ndarray, refs: List[np.ndarray],
                      atol: float, opset: int, lite_targets: Sequence[str],
                      lite_python: Optional[str], progress: bool) -> Dict[str, Dict[str, Any]]:
    """Write and verify every requested artifact; one verification record per artifact."""
    arts: Dict[str, Dict[str, Any]] = {}
    # the legacy program comes with Paddle Inference and is what Paddle Lite converts
    with_legacy = "paddle" in formats or "lite" in formats
    steps = [f for f in ("paddle", "legacy", "onnx", "lite")
             if f in formats or (f == "legacy" and with_legacy)]
    bar = tqdm(total=len(steps), desc=f"exporting {name}", unit="format", disable=not progress,
               file=sys.stderr)
    if "paddle" in formats:
        bar.set_postfix_str("paddle")
        folder = os.path.join(out_dir, "paddle")
        os.makedirs(folder, exist_ok=True)
        mf, pf = export_program(model, size, batch_size, folder)
        arts["paddle"] = _paddle_inference(mf, pf, folder, "paddle_pir", x, refs, atol)
        bar.update()
    legacy = None
    if "legacy" in steps:
        bar.set_postfix_str("legacy")
        folder = os.path.join(out_dir, "legacy")
        mf, pf = save_legacy(model, size, batch_size, folder)
        legacy = (mf, pf)
        arts["legacy"] = _paddle_inference(mf, pf, folder, "paddle_legacy_pdmodel", x, refs,
                                           atol)
        bar.update()
    if "onnx" in formats:
        bar.set_postfix_str("onnx")
        arts["onnx"] = _onnx(model, size, batch_size, os.path.join(out_dir, "onnx"), x, refs,
                             atol, opset)
        bar.update()
    if "lite" in formats:
        bar.set_postfix_str("lite")
        arts.update(lite_export(name, legacy[0], legacy[1], os.path.join(out_dir, "lite"),
                                x, refs, atol, targets=lite_targets, python=lite_python))
        bar.update()
    bar.close()
    return arts


def _raise_if_failed(name: str, arts: Dict[str, Dict[str, Any]], out_dir: str) -> None:
    bad = {k: a.get("error") or a.get("max_abs_diff") for k, a in arts.items()
           if a.get("status") not in ("passed", "not_executable")}
    if bad:
        raise RuntimeError(f"{name}: artifacts failed verification: {bad} "
                           f"(see {out_dir}/export.json)")


def export(model_or_name: Union[str, nn.Layer], formats: Sequence[str] = FORMATS,
           out_dir: Optional[str] = None, input_size: Optional[Sequence[int]] = None,
           batch_size: int = 1, lite_targets: Sequence[str] = ("arm", "x86"),
           opset: int = 13, atol: float = DEFAULT_ATOL, seed: int = 0,
           lite_python: Optional[str] = None, strict: bool = False,
           progress: bool = False, weights: Optional[Dict[str, Any]] = None,
           features_only: bool = False,
           out_indices: Optional[Sequence[int]] = None,
           class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export and verify; returns the report written to ``out_dir/export.json``.

    ``formats`` is any of ``paddle``, ``onnx``, ``lite`` (``lite`` implies the legacy program).
    ``lite_python`` overrides ``PPNETS_PADDLELITE_PYTHON`` (see :mod:`ppnets.deploy.lite`).
    ``strict=True`` raises RuntimeError when an artifact that was run failed its check;
    ``progress=True`` shows a progress bar on stderr. A passed-in Layer is copied, never
    modified. ``weights`` describes the model's weights for the report (``weights``; e.g.
    ``model.loaded_weights.record()``); a registry name is built with random weights, which
    the report and a warning say. ``features_only`` / ``out_indices``: the features-only
    backbone (module docstring); the report's ``outputs`` lists each output's shape. It also
    records ``class_names`` (given, else the weights': :func:`ppnets.engine.evaluate
    .serving_info`) and ``preprocessing`` (the weights' eval transform) for ``ppnets predict``.
    """
    _check_formats(formats)
    model, name, size = deploy_form(model_or_name, input_size, features_only, out_indices)
    if weights is None and isinstance(model_or_name, str):
        weights = _random_weights_record(name)
    out_dir = os.path.abspath(out_dir or os.path.join("exports", name))
    os.makedirs(out_dir, exist_ok=True)
    x, refs = _reference_io(model, size, batch_size, seed, out_dir)

    arts = _export_artifacts(model, name, size, batch_size, formats, out_dir, x, refs, atol,
                             opset, lite_targets, lite_python, progress)
    report: Dict[str, Any] = {"schema": SCHEMA, "model": name, "input_size": list(size),
                              "batch_size": batch_size, "deploy": True, "seed": seed,
                              "atol": atol, "paddle_version": paddle.__version__,
                              "weights": weights,
                              "outputs": [list(r.shape) for r in refs], "artifacts": arts}
    is_backbone = isinstance(model, FeatureBackbone)
    # class names and eval preprocessing for `ppnets predict` / `ppnets eval --export`
    report.update(serving_info(name, size, weights, None if is_backbone else refs[0].shape[-1]))
    if class_names is not None:
        report.update(class_names=list(class_names), class_names_source="given")
    if is_backbone:
        report.update(features_only=True, out_indices=list(model.out_indices),
                      feature_info=model.feature_info.get_dicts())
    report["timestamp_utc"] = utc_now()
    report["all_passed"] = all(a.get("status") in ("passed", "not_executable")
                               for a in arts.values())
    atomic_write_json(os.path.join(out_dir, "export.json"), report, strict=True)
    if strict:
        _raise_if_failed(name, arts, out_dir)
    return report


def lite_export(name: str, model_file: str, params_file: str, out_dir: str, x: np.ndarray,
                refs: Sequence[np.ndarray], atol: float, targets: Sequence[str] = LITE_TARGETS,
                python: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Op check + ``.nb`` per target + x86 run; one verification record per target (every
    output of the ``.nb`` against ``refs``, the eager outputs in order)."""
    os.makedirs(out_dir, exist_ok=True)
    records: Dict[str, Dict[str, Any]] = {}
    for target in targets:
        if target not in LITE_TARGETS:
            raise ValueError(f"unknown Paddle Lite target {target!r}; expected {LITE_TARGETS}")
        rec: Dict[str, Any] = {"format": f"paddle_lite_nb_{target}", "target": target}
        try:
            report = check_program(model_file, target=target, python=python)
            atomic_write_json(os.path.join(out_dir, f"opcheck_{target}.json"), report,
                              strict=True)
            rec["unsupported_ops"] = report["unsupported"]
            conv = convert(model_file, params_file, os.path.join(out_dir, f"model_{target}"),
                           target, python)
            rec["paddlelite"] = conv["paddlelite"]
            if not conv["ok"]:
                rec.update(status="failed", error="paddle_lite_opt wrote no .nb",
                           log=conv["log"][-2000:])
            else:
                rec["file"] = conv["nb_file"]
                if target in EXECUTABLE_TARGETS:
                    outs = run_nb(conv["nb_file"], x, python=python)
                    rec["runtime"] = f"paddle_lite {conv['paddlelite']} x86 (MobileConfig)"
                    rec.update(compare_all_outputs(outs, refs, atol))
                else:
                    rec.update(status="not_executable",
                               reason=f"a {target} .nb cannot run on this {os.uname().machine} "
                                      "host; run it on the device (lite_runner.py)")
        except LiteUnavailableError as exc:
            rec.update(status="not_run", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded beside the artifact
            rec.update(status="failed", error=f"{type(exc).__name__}: {str(exc)[-1500:]}")
        rec["timestamp_utc"] = utc_now()
        atomic_write_json(os.path.join(out_dir, f"verify_{target}.json"), rec, strict=True)
        records[f"lite_{target}"] = rec
    return records
