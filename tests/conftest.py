"""Shared test helpers."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import paddle
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
CIFAR_PARTIAL = os.path.join(SHARED_DATA, "cifar-10-python-partial.tar.gz")
IMAGENET_SAMPLE = os.path.join(SHARED_DATA, "imagenet-val-sample")


def randomize_bn(model: paddle.nn.Layer, seed: int = 0) -> None:
    """Random running statistics and affine parameters for every BatchNorm, so that BN folding is
    actually exercised (fresh BN is the identity up to eps)."""
    rng = np.random.RandomState(seed)
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm)):
            n = layer._mean.shape[0]
            layer._mean.set_value(rng.uniform(-0.2, 0.2, n).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.weight is not None:
                layer.weight.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.bias is not None:
                layer.bias.set_value(rng.uniform(-0.2, 0.2, n).astype("float32"))


# Registry-wide tests of variants above this many parameters (published, else model_info's
# measured count) carry the `slow` marker: the default run leaves them out, CI runs `-m slow`.
SLOW_PARAMS_M = 40.0


def model_param(name: str, xdist_group: bool = True):
    """``pytest.param(name)`` with the `slow` marker for large variants and, optionally, one
    xdist group per variant (so `--dist loadgroup` builds each variant on one worker only)."""
    import ppnets

    info = ppnets.model_info(name)
    params_m = info.get("params_m") or (info.get("measured") or {}).get("params_m") or 0.0
    marks = [pytest.mark.xdist_group(f"model-{name}")] if xdist_group else []
    if params_m > SLOW_PARAMS_M:
        marks.append(pytest.mark.slow)
    return pytest.param(name, id=name, marks=marks)


def state_dict_signature(model: paddle.nn.Layer) -> str:
    """Hash of the state dict's keys and shapes: pins a default architecture while keywords are
    added to its constructor."""
    import hashlib

    lines = "\n".join(f"{k}:{list(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def assert_reparameterize_keeps_output(model: paddle.nn.Layer, x, atol: float = 1e-5):
    """Eval-mode output before and after ``model.reparameterize()`` agree within ``atol`` (scaled
    by the output magnitude beyond 1, as float32 rounding is relative); returns the fused output."""
    model.eval()
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=atol * max(1.0, np.abs(before).max()))
    return after


# Parity with a reference implementation, in two checks that hold on any CPU:
# - float64 on both sides (same weights, same input): only summation order differs, so the
#   outputs agree to ~1e-12 relative; REL64 leaves room for that and nothing else -- a real
#   defect (an eps, a padding, a GELU variant) is >= 1e-4 relative. This is the evidence of
#   equality.
# - float32 (what users run): held to F32_FACTOR times the reference's own float32-vs-float64
#   gap on this network and input, the measured size of float32 rounding there, which follows
#   the CPU's kernels on both sides alike (a floor of a few float32 ulps of the logit scale
#   keeps a bit-exact reference from demanding a bit-exact us).
REL64 = 1e-6
F32_FACTOR = 10.0


def float64_model(build):
    """``build()`` with float64 as Paddle's default dtype (every parameter and buffer float64)."""
    paddle.set_default_dtype("float64")
    try:
        return build()
    finally:
        paddle.set_default_dtype("float32")


def parity_bounds(ref64: np.ndarray, ref32: np.ndarray):
    """(float64 bound, float32 bound) for outputs compared with ``ref64`` (see above)."""
    scale = max(1.0, float(np.abs(ref64).max()))
    gap = float(np.abs(ref32.astype(np.float64) - ref64).max())
    return REL64 * scale, F32_FACTOR * max(gap, 4 * float(np.finfo(np.float32).eps) * scale)


def assert_parity(ours64: np.ndarray, ours32: np.ndarray, ref64: np.ndarray,
                  ref32: np.ndarray, what: str) -> None:
    """Our float64 and float32 outputs against the reference's float64 output (module note)."""
    assert ours64.dtype == np.float64 and ours32.dtype == np.float32, (ours64.dtype, ours32.dtype)
    assert ours64.shape == ref64.shape and ours32.shape == ref64.shape
    tol64, tol32 = parity_bounds(ref64, ref32)
    diff64 = float(np.abs(ours64 - ref64).max())
    assert diff64 <= tol64, (f"{what}: float64 max |ours - reference| = {diff64:.3g} > "
                             f"{tol64:.3g} (REL64 x max(1, max|ref|))")
    diff32 = float(np.abs(ours32.astype(np.float64) - ref64).max())
    assert diff32 <= tol32, (
        f"{what}: float32 max |ours - reference(float64)| = {diff32:.3g} > {tol32:.3g} "
        f"({F32_FACTOR:g} x the reference's own float32 gap "
        f"{float(np.abs(ref32.astype(np.float64) - ref64).max()):.3g})")


def require_shared(path: str) -> str:
    if not os.path.exists(path):
        pytest.skip(f"real data not found at {path} (the shared data folder ../shared/data beside "
                    "the repository); see its README")
    return path


class TinyCNN(paddle.nn.Layer):
    """Test-only classifier: conv-BN-ReLU stages, global pool, linear; no dropout."""

    def __init__(self, num_classes=10, widths=(8, 16), deploy=False):
        super().__init__()
        nn = paddle.nn
        layers, cin = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv2D(cin, w, 3, stride=1 if i == 0 else 2, padding=1,
                                 bias_attr=False), nn.BatchNorm2D(w), nn.ReLU()]
            if i < len(widths) - 1 and len(widths) > 2:
                layers.append(nn.MaxPool2D(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(paddle.reshape(self.pool(self.features(x)), [0, -1]))


@contextlib.contextmanager
def temporary_models(family: str, builder, variants: dict, **info):
    """Register test-only models for the duration of a ``with`` block (never visible to other
    tests: registry-wide tests iterate ``ppnets.list_models()``)."""
    from ppnets.registry import _ALIASES, _REGISTRY, register_models

    register_models(family, builder, variants, paper=f"test-only models ({family})",
                    arxiv=None, defaults=info or None)
    try:
        yield list(variants)
    finally:
        for name in variants:
            entry = _REGISTRY.pop(name, None)
            for alias in (entry.aliases if entry else []):
                _ALIASES.pop(alias, None)


@pytest.fixture(scope="module")
def engine_test_models():
    """Two tiny CNNs registered for one module's tests (the engine trains registry names)."""
    with temporary_models("test_engine", TinyCNN, {
            "test_engine_tiny": {"cfg": {"widths": (8, 16)}},
            "test_engine_small": {"cfg": {"widths": (32, 64, 128)}}}) as names:
        yield names
