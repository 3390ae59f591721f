"""Shared test helpers."""
from __future__ import annotations

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


def require_shared(path: str) -> str:
    if not os.path.exists(path):
        pytest.skip(f"real data not found at {path} (the shared data folder ../shared/data beside "
                    "the repository); see its README")
    return path


@pytest.fixture(scope="module")
def engine_test_models():
    """The tiny test-only models of tests/test_engine.py, registered for one module's tests."""
    from tests.test_engine import engine_test_models as fixture
    yield from fixture.__wrapped__()
