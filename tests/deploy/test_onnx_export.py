"""The one ONNX export (ppnets.runtime.export_onnx): GroupNorm's epsilon and LeakyReLU's slope
survive paddle2onnx.

paddle2onnx 2.1 writes GroupNorm as InstanceNormalization with an uninitialised epsilon (0.0 in
one export, -9.7e-07 in the next, measured on PoolFormer); a negative epsilon gave NaN logits
for some inputs. The export restores the model's epsilon on every such node.
"""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.runtime import compare_outputs, deploy_form, export_onnx
from ppnets.runtime.onnx_export import restore_dropped_attributes

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _instance_norm_eps(path):
    return [a.f for n in onnx.load(path).graph.node if n.op_type == "InstanceNormalization"
            for a in n.attribute if a.name == "epsilon"]


@pytest.fixture(scope="module")
def poolformer_onnx(tmp_path_factory):
    model, _, size = deploy_form("poolformer_s12", (3, 64, 64))
    path = export_onnx(model, [1, *size], str(tmp_path_factory.mktemp("pf") / "model"))
    return model, path


def test_group_norm_epsilon_is_the_models(poolformer_onnx):
    model, path = poolformer_onnx
    eps = _instance_norm_eps(path)
    assert len(eps) == sum(isinstance(m, paddle.nn.GroupNorm) for m in model.sublayers()) > 0
    assert eps == pytest.approx([1e-5] * len(eps), rel=1e-6)


def test_restore_repairs_a_dropped_epsilon(poolformer_onnx, tmp_path):
    model, path = poolformer_onnx
    graph = onnx.load(path)
    for node in graph.graph.node:
        for attr in node.attribute:
            if node.op_type == "InstanceNormalization" and attr.name == "epsilon":
                attr.f = -9.673984777691658e-07   # what paddle2onnx 2.1 wrote in one export
    broken = str(tmp_path / "broken.onnx")
    onnx.save(graph, broken)
    assert restore_dropped_attributes(broken, model) == len(_instance_norm_eps(path))
    assert _instance_norm_eps(broken) == _instance_norm_eps(path)


@pytest.mark.parametrize("seed", range(4))
def test_poolformer_onnx_equals_eager(poolformer_onnx, seed):
    model, path = poolformer_onnx
    x = np.random.default_rng(seed).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert compare_outputs(out, ref, 1e-4)["status"] == "passed"


def test_non_finite_outputs_fail_with_a_sentence():
    ref = np.ones((1, 10), np.float32)
    out = ref.copy()
    out[0, 3] = np.nan
    rec = compare_outputs(out, ref, 1e-4)
    assert rec["status"] == "failed" and "1 of 10 output values are NaN" in rec["error"]
    assert "max_abs_diff" not in rec


def test_models_with_disagreeing_norm_epsilons_are_refused(tmp_path):
    class TwoNorms(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.a = paddle.nn.GroupNorm(1, 4, epsilon=1e-5)
            self.b = paddle.nn.GroupNorm(1, 4, epsilon=1e-6)

        def forward(self, x):
            return self.b(self.a(x))

    model = TwoNorms()
    model.eval()
    with pytest.raises(ValueError, match="different values of epsilon"):
        export_onnx(model, [1, 4, 8, 8], str(tmp_path / "m"))


def test_leaky_relu_keeps_its_slope(tmp_path):
    """paddle2onnx 2.1 writes LeakyRelu with alpha 0.0: without the fix this net is a ReLU net."""
    paddle.seed(0)
    model = paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3), paddle.nn.LeakyReLU(0.1),
                                 paddle.nn.Conv2D(8, 4, 3), paddle.nn.LeakyReLU(0.1))
    model.eval()
    path = export_onnx(model, [1, 3, 16, 16], str(tmp_path / "m"))
    alphas = [a.f for n in onnx.load(path).graph.node if n.op_type == "LeakyRelu"
              for a in n.attribute if a.name == "alpha"]
    assert alphas == pytest.approx([0.1, 0.1])
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert compare_outputs(out, ref, 1e-4)["status"] == "passed"
