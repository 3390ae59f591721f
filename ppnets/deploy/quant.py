"""INT8 with PaddleSlim 2.6: post-training quantization (PTQ) and quantization-aware training
(QAT) of ppnets models, evaluated on real held-out images.

* :func:`ptq` -- ``paddleslim.quant.quant_post_static`` on a legacy ``.pdmodel`` (written by
  :func:`ppnets.deploy.save_legacy`), calibrated on real training images, under the old IR;
* :func:`qat_fit` -- ``paddleslim.QAT(config).quantize(model)`` on a trained model, then
  fine-tuned by :func:`ppnets.engine.fit` (``fit(cfg, model=quantized)``);
* :func:`evaluate_layer` / :func:`evaluate_program` -- top-1 of a dygraph model (QAT: simulated
  INT8) or of a saved old-IR program run by ``paddle.static.Executor`` (PTQ: simulated INT8,
  quantize/dequantize ops), on the same images, both by the engine's
  :func:`~ppnets.engine.evaluate_network`.

PaddleSlim calls switch Paddle to static mode and a failure can leave it there: run each
experiment in its own process (``reproduce/int8_quantization.py`` does; the tests use
subprocesses). ``paddleslim.analysis.flops`` is broken on Paddle 3.3 and is not used.

:func:`check_numpy_unchanged` runs before PaddleSlim is imported. The MobileNetV2 PTQ and QAT
failures (``'numpy.dtypes.BoolDType' object has no attribute 'bits'``) recorded in
``results/deploy/int8_short`` were not caused by the model: that process had loaded numpy 2.x
(pulled in by a runtime install of paddle2onnx's dependencies), numpy 1.26.4 was reinstalled
into the venv while it ran, and importing PaddleSlim then loaded numpy 1.26's
``numpy/core/_type_aliases.py`` against numpy 2's C core, whose ``typeinfo`` holds dtype
instances without ``.bits``. The same model quantizes normally in a consistent environment.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Dict, Iterator, Optional

import numpy as np
import paddle

import ppnets
from ppnets.engine import build_model, evaluate_network, fit, load_config
from ppnets.engine.data import build_cifar10

__all__ = ["check_numpy_unchanged", "cifar10_arrays", "evaluate_layer", "evaluate_program",
           "predict_layer",
           "ptq", "qat_config", "qat_fit"]


def check_numpy_unchanged() -> None:
    """Raise RuntimeError when the numpy installed on disk is not the numpy this process
    imported: lazily imported numpy submodules (PaddleSlim pulls some in) would then mix two
    versions and fail far from the cause (see the module docstring)."""
    from importlib import metadata

    installed = metadata.version("numpy")
    if installed != np.__version__:
        raise RuntimeError(
            f"numpy {np.__version__} is loaded in this process but numpy {installed} is now "
            "installed: the environment changed while this process ran (e.g. a pip install "
            "pulled another numpy). Restart the process in a consistent environment "
            "(ppnets pins numpy 1.26.4).")


def cifar10_arrays(mode: str, data_file: str, image_size: int = 32,
                   limit: Optional[int] = None):
    """(images NCHW float32 normalised, labels int64) of CIFAR-10 ``mode`` without
    augmentation (the engine's eval transform), read as the engine reads it
    (:func:`ppnets.engine.data.build_cifar10`): a missing or damaged archive is a
    DataUnavailableError saying what was expected."""
    # no crop and no flip: the evaluation transform, for the training split too
    ds = build_cifar10(mode, data_file, image_size, random_crop_padding=0, hflip=False,
                       download=False)
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64).reshape(-1)


def _batches(x: np.ndarray, y: Optional[np.ndarray], batch_size: int,
             drop_last: bool = False) -> Iterator:
    """``(images, labels)`` slices of ``batch_size`` (``x`` alone when ``y`` is None)."""
    end = len(x) - len(x) % batch_size if drop_last else len(x)
    for i in range(0, end, batch_size):
        yield x[i:i + batch_size] if y is None else (x[i:i + batch_size], y[i:i + batch_size])


def predict_layer(model, x: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """Predicted class of each image by a dygraph model in eval mode."""
    model.eval()
    preds = []
    with paddle.no_grad():
        for xb in _batches(x, None, batch_size):
            preds.append(model(paddle.to_tensor(xb)).numpy().argmax(1))
    return np.concatenate(preds)


def evaluate_layer(model, x: np.ndarray, y: np.ndarray, batch_size: int = 100) -> float:
    """Top-1 accuracy (fraction) of a dygraph model in eval mode
    (:func:`ppnets.engine.evaluate_network` over the arrays)."""
    return evaluate_network(model, _batches(x, y, batch_size)).top1


@contextlib.contextmanager
def _static_mode():
    paddle.enable_static()
    try:
        with paddle.pir_utils.OldIrGuard():
            yield
    finally:
        paddle.disable_static()


def evaluate_program(model_dir: str, model_filename: str, params_filename: str, x: np.ndarray,
                     y: np.ndarray, batch_size: int) -> float:
    """Top-1 of a saved old-IR inference program run by the static Executor (CPU)
    (:func:`ppnets.engine.evaluate_network` with the program as the network).

    The program's input shape is fixed at export; ``batch_size`` must match it.
    """
    with _static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = paddle.static.load_inference_model(
                model_dir, exe, model_filename=model_filename,
                params_filename=params_filename)
            def logits(images):
                return exe.run(program, feed={feeds[0]: images}, fetch_list=fetches)[0]

            # the program's batch is fixed: a last, smaller batch is left out
            return evaluate_network(logits, _batches(x, y, batch_size, drop_last=True)).top1


def _import_paddleslim() -> None:
    """``import paddleslim`` without the two warnings it triggers about its own dependencies
    (pkg_resources deprecated, setuptools replacing distutils): nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message="Setuptools is replacing distutils",
                                category=UserWarning)
        import paddleslim  # noqa: F401


def ptq(model_file: str, params_file: str, out_dir: str, calib_x: np.ndarray,
        batch_size: int, weight_quantize_type: str = "channel_wise_abs_max",
        algo: str = "hist", onnx_format: bool = True) -> Dict[str, Any]:
    """``quant_post_static`` of a legacy model; calibration batches come from ``calib_x``.

    ``weight_quantize_type``: ``channel_wise_abs_max`` (per output channel) or ``abs_max``
    (per tensor). Writes ``out_dir/model.pdmodel`` + ``.pdiparams``.
    """
    check_numpy_unchanged()
    _import_paddleslim()
    from paddleslim.quant import quant_post_static

    model_dir = os.path.dirname(os.path.abspath(model_file))
    n_batches = len(calib_x) // batch_size

    def gen():  # Paddle's PTQ feeds each item as the executor's feed dict
        for i in range(n_batches):
            yield {"x": calib_x[i * batch_size:(i + 1) * batch_size]}

    with _static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        quant_post_static(executor=exe, model_dir=model_dir, quantize_model_path=out_dir,
                          data_loader=gen, model_filename=os.path.basename(model_file),
                          params_filename=os.path.basename(params_file),
                          batch_nums=n_batches, algo=algo,
                          weight_quantize_type=weight_quantize_type, onnx_format=onnx_format)
    return {"model_dir": out_dir, "model_filename": "model.pdmodel",
            "params_filename": "model.pdiparams", "calibration_images": n_batches * batch_size,
            "weight_quantize_type": weight_quantize_type, "algo": algo,
            "onnx_format": onnx_format}


def qat_config(weight_quantize_type: str = "channel_wise_abs_max") -> Dict[str, Any]:
    return {"weight_quantize_type": weight_quantize_type,
            "activation_quantize_type": "moving_average_abs_max",
            "weight_bits": 8, "activation_bits": 8, "dtype": "int8", "window_size": 10000,
            "moving_rate": 0.9,
            "quantizable_layer_type": ["Conv2D", "Linear"]}


def qat_fit(cfg: Dict[str, Any], fp32_state: Dict[str, Any], deploy: bool = False,
            weight_quantize_type: str = "channel_wise_abs_max", num_classes: int = 10):
    """Fine-tune a QAT-wrapped copy of the trained model with :func:`ppnets.engine.fit`.

    ``fp32_state`` is the trained model's state dict (train form), for ``num_classes`` classes
    (the data's). ``deploy=True`` fuses the model (``reparameterize_model``) before inserting
    the fake-quant layers, so the quantized weights are the deployed ones. Returns (fit
    results, the quantized dygraph model).
    """
    check_numpy_unchanged()
    _import_paddleslim()
    from paddleslim import QAT

    cfg = load_config(None, base=cfg)
    net = build_model(cfg, num_classes)
    net.set_state_dict(fp32_state)
    if deploy:
        net.eval()
        ppnets.reparameterize_model(net)
        net.train()
    QAT(config=qat_config(weight_quantize_type)).quantize(net)
    return fit(cfg, model=net), net
