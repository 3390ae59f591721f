"""One interface over the runtimes that serve a ppnets export folder.

    from ppnets.runtime import open_session, check_session
    session = open_session("exports/fasternet_t0", runtime="openvino", threads=1)
    logits, = session.run(x)                 # every output, numpy, in export order
    check_session(session, "exports/fasternet_t0")["status"]   # "passed"

Runtimes (:data:`RUNTIMES`) and what each reads from an export folder written by
``ppnets.deploy.export`` (``int8/`` is written by ``ppnets.deploy.x86_int8.quantize_export``):

* ``paddle_inference``: ``paddle/inference.json`` (fp32; bf16 is the same program with oneDNN
  bfloat16), ``int8/paddle/model.pdmodel`` (PaddleSlim PTQ program, oneDNN INT8);
* ``onnxruntime``: ``onnx/model.onnx``; ``int8/onnx/model.onnx`` (QDQ);
* ``openvino``: ``onnx/model.onnx`` by default (``options={"source": "paddle"}``: the legacy
  Paddle program through OpenVINO's Paddle frontend), ``INFERENCE_PRECISION_HINT`` always set
  (f32 or bf16: OpenVINO's default on a CPU with bf16 is bf16, which is not fp32);
  ``int8/onnx/model.onnx``;
* ``paddle_lite``: ``lite/model_x86.nb``; its opener lives in ``ppnets.deploy.lite`` and is
  registered (:func:`register_runtime`) when ``ppnets.deploy`` is imported.

fp32 sessions are checked exactly (:func:`check_session`: the export's tolerance against the
eager outputs saved at export); bf16 and int8 are "approximate": their differences and top-1
agreement are reported, never called exact.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ppnets.utils import redirect_fd
from ppnets.utils.signal_stack import keep_signal_stack

from .compare import DEFAULT_ATOL, compare_all_outputs

__all__ = ["RUNTIMES", "PRECISIONS", "RuntimeUnavailableError", "PrecisionUnsupportedError",
           "Session", "cpu_supports_bf16", "runtime_status", "open_session", "check_session",
           "register_runtime", "artifact_file", "reference_outputs", "OPENVINO_SOURCES",
           "OPENVINO_DEFAULT_SOURCE", "PADDLE_CONFIG_KEYS"]

RUNTIMES = ("paddle_inference", "onnxruntime", "openvino", "paddle_lite")
PRECISIONS = ("fp32", "bf16", "int8")

# The pip command that installs each runtime's Python package.
_INSTALL = {"onnxruntime": 'pip install "ppnets[onnx]"',
            "openvino": 'pip install "ppnets[openvino]"'}
OPENVINO_SOURCES = ("onnx", "paddle")
# Measured on fasternet_t0 and mobilenetv2_100 (docs/deploy.md, "Runtimes"): both sources are
# exact; the ONNX graph is the default.
OPENVINO_DEFAULT_SOURCE = "onnx"


class RuntimeUnavailableError(RuntimeError):
    """The runtime's package (or Paddle Lite's Python) is not installed here; the message names
    what to install."""


class PrecisionUnsupportedError(ValueError):
    """This runtime cannot run this precision on this machine; the message says why."""


class Session:
    """One loaded model in one runtime. ``run(x)`` returns every output as numpy, in export
    order; ``record()`` describes the session for a benchmark or evaluation report.

    Openers (built-in or :func:`register_runtime`'s) build it from a ``runner`` -- a callable
    taking the input array and returning the list of outputs -- and the settings they applied.

    ``timer``: None when ``run`` itself is what to time (the runtime runs in this process).
    A runtime in another process (paddle_lite) sets it to ``timer(x, warmup, repeats)``,
    which returns the seconds of each repeat measured where the model runs, by the same loop
    as ``ppnets.bench.timing.time_calls``: timing ``run`` there would add the exchange with
    the process.
    """

    def __init__(self, runtime: str, precision: str, threads: int, model_file: str,
                 runner: Callable[[np.ndarray], List[np.ndarray]], version: str,
                 settings: Optional[Dict[str, Any]] = None, device: str = "cpu",
                 closer: Optional[Callable[[], None]] = None,
                 timer: Optional[Callable[[np.ndarray, int, int], List[float]]] = None):
        self.runtime = runtime
        self.precision = precision
        self.threads = threads
        self.model_file = model_file
        self.version = version
        self.device = device
        self.settings = dict(settings or {})
        self.timer = timer
        self._runner = runner
        self._closer = closer

    def run(self, x: np.ndarray) -> List[np.ndarray]:
        """Run once on ``x`` (float32, the export's input shape); every output, in order."""
        return list(self._runner(np.ascontiguousarray(x, dtype=np.float32)))

    def record(self) -> Dict[str, Any]:
        return {"runtime": self.runtime, "version": self.version, "precision": self.precision,
                "threads": self.threads, "device": self.device, "artifact": self.model_file,
                "settings": dict(self.settings)}

    def close(self) -> None:
        """Release what the runtime holds (a Paddle Lite child process); idempotent."""
        if self._closer is not None:
            closer, self._closer = self._closer, None
            closer()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Session(runtime={self.runtime!r}, precision={self.precision!r}, "
                f"threads={self.threads}, model_file={self.model_file!r})")


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX_BF16 in /proc/cpuinfo).
    Without it, a runtime emulates bf16 or refuses: bf16 is then never faster."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags)


# --------------------------------------------------------------------------- artifacts
_EXPORT_HINT = "ppnets export --model MODEL --formats {formats} --output-dir {export_dir}"
_INT8_HINT = ("quantize the export folder first: ppnets.deploy.x86_int8.quantize_export("
              "export_dir, calibration_images, calibration_source) writes int8/")


def _artifact(export_dir: str, relative: str, runtime: str, precision: str,
              formats: str) -> str:
    path = os.path.join(export_dir, relative)
    if os.path.isfile(path):
        return path
    if not os.path.isdir(export_dir):
        raise FileNotFoundError(f"{export_dir} is not a folder: open_session expects an export "
                                "folder written by `ppnets export` (export.json, paddle/, "
                                "onnx/, ...)")
    if precision == "int8":
        how = _INT8_HINT
    else:
        how = "export it: " + _EXPORT_HINT.format(formats=formats, export_dir=export_dir)
    raise FileNotFoundError(f"{runtime} ({precision}) reads {relative} from the export folder, "
                            f"and {export_dir} has none; {how}")


def artifact_file(export_dir: str, runtime: str, precision: str = "fp32",
                  options: Optional[Dict[str, Any]] = None) -> str:
    """The file ``runtime`` reads from ``export_dir`` at ``precision`` (module docstring);
    FileNotFoundError naming the command that writes it when it is missing."""
    options = options or {}
    if runtime == "paddle_inference":
        rel = "int8/paddle/model.pdmodel" if precision == "int8" else "paddle/inference.json"
        return _artifact(export_dir, rel, runtime, precision, "paddle")
    if runtime == "onnxruntime" or (runtime == "openvino" and
                                    (precision == "int8" or _openvino_source(options) == "onnx")):
        rel = "int8/onnx/model.onnx" if precision == "int8" else "onnx/model.onnx"
        return _artifact(export_dir, rel, runtime, precision, "onnx")
    if runtime == "openvino":
        return _artifact(export_dir, "legacy/model.pdmodel", runtime, precision, "paddle")
    if runtime == "paddle_lite":
        return _artifact(export_dir, "lite/model_x86.nb", runtime, precision,
                         "lite --lite-targets x86")
    raise _unknown_runtime(runtime)


# --------------------------------------------------------------------------- openers
def _params_file(model_file: str) -> str:
    return os.path.splitext(model_file)[0] + ".pdiparams"


def _open_paddle_inference(export_dir: str, threads: int, precision: str, device: str,
                           options: Dict[str, Any]) -> Session:
    import paddle
    from paddle import inference

    from .predictor import make_config, pass_workarounds, run_predictor

    if device not in ("cpu", "gpu"):
        raise ValueError(f"paddle_inference runs on device 'cpu' or 'gpu', not {device!r}")
    if device == "gpu" and not paddle.is_compiled_with_cuda():
        raise RuntimeUnavailableError(f"device 'gpu' needs a CUDA build of Paddle and "
                                      f"Paddle {paddle.__version__} here is a CPU build; use "
                                      "device 'cpu', or install paddlepaddle-gpu")
    if precision != "fp32" and device != "cpu":
        raise PrecisionUnsupportedError(f"paddle_inference {precision} is the oneDNN CPU path; "
                                        f"on {device} use fp32")
    model_file = artifact_file(export_dir, "paddle_inference", precision)
    mkldnn = bool(options.get("mkldnn", True))
    if precision != "fp32" and not mkldnn:
        raise PrecisionUnsupportedError(f"paddle_inference {precision} runs through oneDNN: "
                                        "leave options['mkldnn'] on")
    workarounds = pass_workarounds(model_file, device, mkldnn)
    config = make_config(model_file, _params_file(model_file), device, threads, mkldnn,
                         delete_passes=[w["deleted_pass"] for w in workarounds])
    settings: Dict[str, Any] = {"device": device, "mkldnn": mkldnn, "ir_optim": True,
                                "cpu_math_library_num_threads": threads,
                                "ir_pass_workarounds": workarounds}
    _paddle_precision(config, precision, settings)
    _paddle_config(config, options.get("paddle_config") or {}, device, mkldnn, settings)
    predictor = _create_quietly(inference, config) if precision == "int8" \
        else inference.create_predictor(config)
    return Session("paddle_inference", precision, threads, model_file,
                   lambda x: run_predictor(predictor, x), paddle.__version__, settings, device)


def _paddle_precision(config, precision: str, settings: Dict[str, Any]) -> None:
    if precision == "bf16":
        _require_bf16("paddle_inference")
        config.enable_mkldnn_bfloat16()
        settings["mkldnn_bfloat16"] = True
    elif precision == "int8":
        config.enable_mkldnn_int8()
        settings["mkldnn_int8"] = True


# options["paddle_config"]: Paddle Inference Config calls beyond make_config's, e.g. PaddleX's
# CPU settings (ppnets.bench.harness.PADDLE_SETTINGS["paddlex"]).
PADDLE_CONFIG_KEYS = ("mkldnn_cache_capacity", "enable_new_ir", "enable_new_executor",
                      "optimization_level", "enable_memory_optim")


def _paddle_config(config, extra: Dict[str, Any], device: str, mkldnn: bool,
                   settings: Dict[str, Any]) -> None:
    unknown = sorted(set(extra) - set(PADDLE_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown options['paddle_config'] keys {unknown}; known: "
                         f"{list(PADDLE_CONFIG_KEYS)}")
    if "mkldnn_cache_capacity" in extra and device == "cpu" and mkldnn:
        config.set_mkldnn_cache_capacity(int(extra["mkldnn_cache_capacity"]))
    if "enable_new_ir" in extra:
        config.enable_new_ir(bool(extra["enable_new_ir"]))
    if extra.get("enable_new_executor"):
        config.enable_new_executor()
    if "optimization_level" in extra:
        config.set_optimization_level(int(extra["optimization_level"]))
    if extra.get("enable_memory_optim"):
        config.enable_memory_optim()
    if extra:
        settings["paddle_config"] = dict(extra)


def _create_quietly(inference, config):
    """``create_predictor`` with its stderr kept back: oneDNN's INT8 passes print a line for
    every op kind they quantize (about 30 lines) whatever the glog settings; they are shown
    only when the predictor cannot be built."""
    with tempfile.TemporaryFile(mode="w+") as log:
        try:
            with redirect_fd(2, log):
                return inference.create_predictor(config)
        except Exception as exc:
            log.seek(0)
            raise RuntimeError(f"Paddle Inference could not build the oneDNN INT8 predictor: "
                               f"{exc}\n{log.read()[-2000:]}") from exc


def _require_bf16(runtime: str) -> None:
    if not cpu_supports_bf16():
        raise PrecisionUnsupportedError(
            f"{runtime} bf16 needs a CPU with AVX512_BF16 or AMX_BF16 and this "
            f"{platform.processor() or platform.machine()} CPU has neither (no avx512_bf16 or "
            "amx_bf16 in /proc/cpuinfo); use fp32, or int8 where the export has it")


def _open_onnxruntime(export_dir: str, threads: int, precision: str, device: str,
                      options: Dict[str, Any]) -> Session:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeUnavailableError(f"onnxruntime does not import here ({exc}); "
                                      f"{_INSTALL['onnxruntime']}")
    _cpu_only("onnxruntime", device)
    if precision == "bf16":
        raise PrecisionUnsupportedError(
            "onnxruntime's CPU execution provider has no bfloat16 kernels for the ops of these "
            "models (convolutions, matmuls, pooling); use fp32, int8 (QDQ), or openvino bf16")
    model_file = artifact_file(export_dir, "onnxruntime", precision)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # errors only: its graph optimizer warns about every node a rewrite leaves in place
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_file, sess_options=opts,
                                providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    settings = {"providers": sess.get_providers(), "intra_op_num_threads": threads,
                "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL"}
    return Session("onnxruntime", precision, threads, model_file,
                   lambda x: sess.run(None, {input_name: x}), ort.__version__, settings)


def _cpu_only(runtime: str, device: str) -> None:
    if device != "cpu":
        raise ValueError(f"ppnets runs {runtime} on device 'cpu' only, not {device!r}")


def _openvino_source(options: Dict[str, Any]) -> str:
    source = options.get("source", OPENVINO_DEFAULT_SOURCE)
    if source not in OPENVINO_SOURCES:
        raise ValueError(f"openvino options['source'] is {source!r}; choose from "
                         f"{list(OPENVINO_SOURCES)} (the export's ONNX graph or its legacy "
                         "Paddle program)")
    return source


def _open_openvino(export_dir: str, threads: int, precision: str, device: str,
                   options: Dict[str, Any]) -> Session:
    try:
        import openvino as ov
    except ImportError as exc:
        raise RuntimeUnavailableError(f"openvino does not import here ({exc}); "
                                      f"{_INSTALL['openvino']}")
    _cpu_only("openvino", device)
    source = _openvino_source(options)
    if precision == "int8" and source != "onnx":
        raise PrecisionUnsupportedError("openvino int8 reads the QDQ ONNX graph "
                                        "(int8/onnx/model.onnx); leave options['source'] unset")
    model_file = artifact_file(export_dir, "openvino", precision, {"source": source})
    # Set explicitly: OpenVINO's default on a bf16-capable CPU is bf16, which is not fp32.
    # int8 keeps the non-quantized ops in f32, so only the QDQ-marked ops are approximate.
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
              "INFERENCE_NUM_THREADS": int(threads), "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1}
    # Every call that may load the CPU plugin or compile: they may leave the thread a signal
    # stack that is freed later (ppnets.utils.signal_stack).
    with keep_signal_stack():
        core = ov.Core()
        if precision == "bf16":
            _require_bf16("openvino")
            if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                raise PrecisionUnsupportedError(f"openvino {ov.__version__} reports no BF16 "
                                                "capability on this CPU; use fp32")
        compiled = core.compile_model(core.read_model(model_file), "CPU", config)
        request = compiled.create_infer_request()
    outputs = list(compiled.outputs)

    def run(x: np.ndarray) -> List[np.ndarray]:
        result = request.infer({0: x})
        return [np.array(result[o]) for o in outputs]

    applied = compiled.get_property("INFERENCE_PRECISION_HINT")
    settings = {"source": source, "device": "CPU", **config,
                "applied_precision": _type_name(applied)}
    return Session("openvino", precision, threads, model_file, run, ov.__version__, settings)


def _type_name(value: Any) -> str:
    """'f32' / 'bf16' for an ``openvino.Type`` (its str() is "<Type: 'float32'>")."""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


_OPENERS: Dict[str, Callable[..., Session]] = {
    "paddle_inference": _open_paddle_inference,
    "onnxruntime": _open_onnxruntime,
    "openvino": _open_openvino,
}
_STATUS: Dict[str, Callable[[], Dict[str, Any]]] = {}


def register_runtime(name: str, opener: Callable[..., Session],
                     status: Optional[Callable[[], Dict[str, Any]]] = None) -> None:
    """Make ``open_session(..., runtime=name)`` call ``opener(export_dir, threads=, precision=,
    device=, options=)``, which returns a :class:`Session`. ``status`` (optional) returns the
    runtime's :func:`runtime_status` entry. Paddle Lite registers itself this way from
    ``ppnets.deploy.lite`` (a floor above this one)."""
    _OPENERS[name] = opener
    if status is not None:
        _STATUS[name] = status


def _unknown_runtime(runtime: str) -> ValueError:
    return ValueError(f"unknown runtime {runtime!r}; known runtimes: {', '.join(RUNTIMES)}")


def open_session(export_dir: str, runtime: str = "paddle_inference", threads: int = 1,
                 precision: str = "fp32", device: str = "cpu",
                 options: Optional[Dict[str, Any]] = None) -> Session:
    """Load the export folder ``export_dir`` in ``runtime`` with ``threads`` threads at
    ``precision``. Raises ValueError for an unknown runtime or precision,
    RuntimeUnavailableError when the runtime is not installed (the message gives the pip
    command), PrecisionUnsupportedError when the runtime cannot run ``precision`` here, and
    FileNotFoundError when the export folder lacks the artifact (naming the command that makes
    it). ``options``: ``mkldnn`` (paddle_inference, default True), ``paddle_config``
    (paddle_inference: a dict of :data:`PADDLE_CONFIG_KEYS`, e.g. PaddleX's CPU settings),
    ``source`` (openvino: ``onnx`` or ``paddle``), ``python`` and ``timeout_s`` (paddle_lite)."""
    if runtime not in RUNTIMES and runtime not in _OPENERS:
        raise _unknown_runtime(runtime)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if int(threads) < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    opener = _OPENERS.get(runtime)
    if opener is None:
        raise RuntimeUnavailableError(
            f"the {runtime} runtime is registered by ppnets.deploy (it runs Paddle Lite in a "
            f"separate Python): `import ppnets.deploy` first")
    return opener(os.path.abspath(export_dir), threads=int(threads), precision=precision,
                  device=device, options=dict(options or {}))


# --------------------------------------------------------------------------- status
def _builtin_status(runtime: str) -> Dict[str, Any]:
    bf16 = ["bf16"] if cpu_supports_bf16() else []
    if runtime == "paddle_inference":  # ppnets does not import without Paddle
        import paddle
        return {"available": True, "version": paddle.__version__, "reason": None,
                "precisions": ["fp32"] + bf16 + ["int8"]}
    try:
        if runtime == "onnxruntime":
            import onnxruntime as ort
            return {"available": True, "version": ort.__version__, "reason": None,
                    "precisions": ["fp32", "int8"]}
        import openvino as ov
        with keep_signal_stack():   # loads the CPU plugin (ppnets.utils.signal_stack)
            caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return {"available": True, "version": ov.__version__, "reason": None,
                "precisions": ["fp32"] + (bf16 if "BF16" in caps else []) + ["int8"]}
    except ImportError as exc:
        return {"available": False, "version": None, "precisions": [],
                "reason": f"{exc}; {_INSTALL[runtime]}"}


def runtime_status() -> Dict[str, Dict[str, Any]]:
    """Every runtime of :data:`RUNTIMES` (and registered ones): ``available``, ``version``,
    ``reason`` (why not available, with the install command) and ``precisions`` usable on this
    machine."""
    out: Dict[str, Dict[str, Any]] = {}
    for runtime in list(RUNTIMES) + [r for r in _OPENERS if r not in RUNTIMES]:
        if runtime in _STATUS:
            out[runtime] = _STATUS[runtime]()
        elif runtime in ("paddle_inference", "onnxruntime", "openvino"):
            out[runtime] = _builtin_status(runtime)
        else:
            out[runtime] = {"available": False, "version": None, "precisions": [],
                            "reason": f"not registered: `import ppnets.deploy` registers "
                                      f"{runtime}"}
    return out


# --------------------------------------------------------------------------- checking
def reference_outputs(export_dir: str) -> Tuple[np.ndarray, List[np.ndarray], float]:
    """``(x, [eager outputs in order], atol)`` saved at export (``reference_io.npz``,
    ``export.json``)."""
    path = os.path.join(export_dir, "reference_io.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: the eager reference is written by "
                                "`ppnets export`; re-export the folder")
    with np.load(path) as saved:
        count = sum(1 for k in saved.files if k.startswith("y_") and k[2:].isdigit())
        refs = [saved[f"y_{i}"] for i in range(count)] if count else [saved["y"]]
        x = saved["x"]
    atol = DEFAULT_ATOL
    meta = os.path.join(export_dir, "export.json")
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            atol = float(json.load(f).get("atol", DEFAULT_ATOL))
    return x, refs, atol


def _approximate(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> Dict[str, Any]:
    """bf16/int8 record: differences and top-1 agreement per output, status "approximate";
    "failed" only for a wrong count or shape of outputs, or a NaN/inf."""
    if len(outs) != len(refs):
        return {"status": "failed", "error": f"the runtime returned {len(outs)} outputs, the "
                f"eager model {len(refs)}"}
    records = []
    for out, ref in zip(outs, refs):
        out = np.asarray(out)
        if out.shape != ref.shape:
            return {"status": "failed", "error": f"output shape {list(out.shape)} != eager "
                    f"{list(ref.shape)}"}
        bad = int((~np.isfinite(out)).sum())
        if bad:  # an approximation that overflows is a failure, not a large difference
            return {"status": "failed", "error": f"{bad} of {out.size} output values are NaN "
                    "or infinite"}
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        ref_max = float(np.abs(ref).max())
        records.append({
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "ref_abs_max": ref_max,
            "max_rel_diff": float(diff.max()) / ref_max if ref_max > 0 else None,
            "top1_agreement": float((out.reshape(out.shape[0], -1).argmax(1)
                                     == ref.reshape(ref.shape[0], -1).argmax(1)).mean())})
    merged: Dict[str, Any] = {"status": "approximate", "num_outputs": len(records),
                              "outputs": records}
    for key in ("max_abs_diff", "max_rel_diff"):
        values = [r[key] for r in records if r[key] is not None]
        merged[key] = max(values) if values else None
    merged["top1_agreement"] = min(r["top1_agreement"] for r in records)
    return merged


def check_session(session: Session, export_dir: str) -> Dict[str, Any]:
    """Run the export's reference input through ``session`` and compare every output with the
    eager model's. fp32: :func:`~ppnets.runtime.compare_all_outputs` at the export's ``atol``
    (``status`` passed/failed). bf16/int8: the largest absolute and relative differences and
    the top-1 agreement per output, ``status`` "approximate" (never "passed"). The record
    carries the session's :meth:`Session.record` under ``session``."""
    x, refs, atol = reference_outputs(export_dir)
    outs = session.run(x)
    if session.precision == "fp32":
        rec = compare_all_outputs(outs, refs, atol)
    else:
        rec = _approximate(outs, refs)
    rec["session"] = session.record()
    return rec
