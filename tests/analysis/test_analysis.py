"""ppnets.analysis: exact MAC/param/memory counts on hand-computable layers, cross-checks with
paddle.flops, mode/hook restoration, the CLI, and (when models are registered) params of every
registered model."""
import json
import math

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

from ppnets.analysis import ModelProfile, profile_model
from ppnets.cli import complexity as cli
from tests.conftest import temporary_models
from ppnets.layers import ConvBN


def _single(layer, input_size, batch_size=1):
    prof = profile_model(layer, input_size=input_size, batch_size=batch_size)
    assert isinstance(prof, ModelProfile)
    return prof


def _paddle_flops(layer, shape):
    # paddle.flops only sums the sublayers of the model it gets, so a bare layer counts 0
    return paddle.flops(nn.Sequential(layer), list(shape), print_detail=False)


# ---------------------------------------------------------------------------------------------
# Exact MACs by formula


@pytest.mark.parametrize("cin,cout,k,stride,groups,hw", [
    (3, 16, 3, 2, 1, 17),     # plain conv, odd size, stride 2
    (8, 12, 3, 1, 4, 9),      # grouped
    (16, 16, 5, 1, 16, 8),    # depthwise
    (6, 10, 1, 1, 1, 7),      # pointwise
])
def test_conv_macs_formula(cin, cout, k, stride, groups, hw):
    conv = nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias_attr=False)
    batch = 2
    prof = _single(conv, (cin, hw, hw), batch_size=batch)
    hout = (hw + 2 * (k // 2) - k) // stride + 1
    expected = batch * cout * hout * hout * (cin // groups) * k * k
    assert prof.macs == expected
    assert prof.flops == 2 * expected
    assert prof.params == cout * (cin // groups) * k * k
    (row,) = prof.layers
    assert row.type == "Conv2D" and row.output_shape == (batch, cout, hout, hout)


def test_conv_transpose_macs_formula():
    conv = nn.Conv2DTranspose(8, 6, 4, stride=2, padding=1, groups=2, bias_attr=False)
    prof = _single(conv, (8, 5, 5))
    # every input element is multiplied with (Cout / groups) * k * k weights
    assert prof.macs == 8 * 5 * 5 * (6 // 2) * 4 * 4
    assert prof.layers[0].output_shape == (1, 6, 10, 10)


def test_linear_on_tokens_macs_formula():
    lin = nn.Linear(24, 40)
    prof = _single(lin, (49, 24), batch_size=3)
    assert prof.macs == 3 * 49 * 24 * 40  # F.linear inside nn.Linear is not counted twice
    assert prof.params == 24 * 40 + 40


class _Attention(nn.Layer):
    """Multi-head self-attention written with every functional product the counter patches."""

    def __init__(self, dim, heads, style):
        super().__init__()
        self.heads, self.style = heads, style
        self.qkv = nn.Linear(dim, 3 * dim, bias_attr=False)
        self.proj = nn.Linear(dim, dim, bias_attr=False)
        self.pos_bias = self.create_parameter([heads, 1, 1])

    def forward(self, x):
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        qkv = self.qkv(x).reshape([b, n, 3, h, d]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.style == "operator":
            attn = q @ k.transpose([0, 1, 3, 2])
        elif self.style == "matmul":
            attn = paddle.matmul(q, k, transpose_y=True)
        elif self.style == "bmm":
            attn = paddle.bmm(q.reshape([b * h, n, d]),
                              k.reshape([b * h, n, d]).transpose([0, 2, 1])).reshape([b, h, n, n])
        else:
            attn = paddle.einsum("bhnd,bhmd->bhnm", q, k)
        attn = F.softmax(attn * d ** -0.5 + self.pos_bias, axis=-1)
        if self.style == "operator":
            out = attn.matmul(v)
        elif self.style == "matmul":
            out = paddle.matmul(attn, v)
        elif self.style == "bmm":
            out = paddle.bmm(attn.reshape([b * h, n, n]), v.reshape([b * h, n, d]))
            out = out.reshape([b, h, n, d])
        else:
            out = paddle.einsum("bhnm,bhmd->bhnd", attn, v)
        return self.proj(out.transpose([0, 2, 1, 3]).reshape([b, n, c]))


@pytest.mark.parametrize("style", ["operator", "matmul", "bmm", "einsum"])
def test_attention_matmul_macs_formula(style):
    b, n, c, h = 2, 10, 16, 4
    d = c // h
    model = _Attention(c, h, style)
    prof = _single(model, (n, c), batch_size=b)
    linear_macs = b * n * c * 3 * c + b * n * c * c
    attn_macs = 2 * b * h * n * n * d  # q @ k^T and attn @ v
    assert prof.macs == linear_macs + attn_macs
    rows = {row.name: row for row in prof.layers}
    # functional products belong to the innermost layer running them: the attention block
    assert rows["(model)"].macs == attn_macs
    assert rows["qkv"].macs == b * n * c * 3 * c
    assert rows["(model)"].params == h
    # each product reads both operands and writes its output
    operands = 2 * (b * h * n * d) + b * h * n * n  # q, k -> attn
    operands += b * h * n * n + b * h * n * d + b * h * n * d  # attn, v -> out
    assert rows["(model)"].memory_bytes == 4 * (operands + h)


def test_einsum_macs_with_broadcast_ellipsis():
    from ppnets.analysis import einsum_macs

    a, b = paddle.zeros([2, 3, 4, 5]), paddle.zeros([3, 5, 6])
    assert einsum_macs("...ij,...jk->...ik", [a, b]) == 2 * 3 * 4 * 5 * 6
    assert einsum_macs("ij->ji", [paddle.zeros([3, 4])]) == 0


def test_scaled_dot_product_attention_macs_formula():
    class SDPA(nn.Layer):
        def forward(self, x):  # x: [batch, seq, heads, head_dim]
            return F.scaled_dot_product_attention(x, x[:, :7], x[:, :7, :, :2], training=False)

    b, n, h, d = 2, 9, 3, 4
    prof = _single(SDPA(), (n, h, d), batch_size=b)
    assert prof.macs == b * h * n * 7 * d + b * h * n * 7 * 2
    q, k, v, out = b * n * h * d, b * 7 * h * d, b * 7 * h * 2, b * n * h * 2
    assert prof.memory_bytes == 4 * (q + k + v + out)


def test_functional_ops_restored_after_profiling():
    before = (paddle.matmul, paddle.bmm, paddle.einsum, F.linear, F.conv2d,
              paddle.Tensor.__matmul__, paddle.Tensor.matmul)
    _single(_Attention(8, 2, "operator"), (4, 8))
    after = (paddle.matmul, paddle.bmm, paddle.einsum, F.linear, F.conv2d,
             paddle.Tensor.__matmul__, paddle.Tensor.matmul)
    assert all(a is b for a, b in zip(before, after))


# ---------------------------------------------------------------------------------------------
# Cross-check with paddle.flops (see docs/complexity.md for the conventions)


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_conv_without_bias_matches_paddle_flops(groups):
    conv = nn.Conv2D(8, 16, 3, padding=1, groups=groups, bias_attr=False)
    assert _single(conv, (8, 12, 12)).macs == _paddle_flops(conv, (1, 8, 12, 12))


def test_conv_with_bias_differs_from_paddle_flops_by_bias_adds():
    conv = nn.Conv2D(8, 16, 3, stride=2, padding=1)
    prof = _single(conv, (8, 12, 12))
    out_numel = 16 * 6 * 6
    # paddle.flops adds one op per output element for the bias; MACs do not count bias adds
    assert _paddle_flops(conv, (1, 8, 12, 12)) - prof.macs == out_numel


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_paddle_flops(bias):
    lin = nn.Linear(32, 20, bias_attr=None if bias else False)
    assert _single(lin, (32,)).macs == _paddle_flops(lin, (1, 32)) == 32 * 20


def test_conv_transpose_differs_from_paddle_flops():
    conv = nn.Conv2DTranspose(8, 6, 4, stride=2, padding=1, bias_attr=False)
    ours = _single(conv, (8, 5, 5)).macs
    # paddle.flops applies the conv formula to the output: out_numel * Cin/groups * k*k
    assert _paddle_flops(conv, (1, 8, 5, 5)) == 6 * 10 * 10 * 8 * 4 * 4 == 4 * ours


def test_bn_counts_zero_macs_where_paddle_flops_counts_two_per_element():
    bn = nn.BatchNorm2D(6)
    assert _single(bn, (6, 5, 5)).macs == 0
    assert _paddle_flops(bn, (1, 6, 5, 5)) == 2 * 6 * 5 * 5


# ---------------------------------------------------------------------------------------------
# Memory access cost and parameters


def test_memory_of_1x1_conv_is_shufflenetv2_formula():
    h, w, c1, c2 = 7, 9, 12, 20
    conv = nn.Conv2D(c1, c2, 1, bias_attr=False)
    prof = _single(conv, (c1, h, w))
    # ShuffleNetV2 (arXiv:1807.11164) Sec. 2, G1: MAC = hw(c1 + c2) + c1 c2, in elements
    assert prof.memory_bytes == 4 * (h * w * (c1 + c2) + c1 * c2)


def test_memory_of_bn_act_and_pass_through_layers():
    c, hw = 4, 3
    model = nn.Sequential(nn.BatchNorm2D(c), nn.ReLU(), nn.Identity(), nn.Dropout(0.5))
    prof = _single(model, (c, hw, hw))
    rows = {row.type: row for row in prof.layers}
    feat = c * hw * hw
    # BN in eval reads weight, bias, running mean and running variance
    assert rows["BatchNorm2D"].memory_bytes == 4 * (2 * feat + 4 * c)
    assert rows["ReLU"].memory_bytes == 4 * 2 * feat
    assert rows["Identity"].memory_bytes == 0 and rows["Dropout"].memory_bytes == 0
    assert prof.memory_bytes == sum(row.memory_bytes for row in prof.layers)


def test_params_exclude_bn_running_stats():
    model = nn.Sequential(ConvBN(3, 8, 3, act="relu"), ConvBN(8, 8, 3, groups=8),
                          nn.AdaptiveAvgPool2D(1))
    prof = _single(model, (3, 8, 8))
    all_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    bn_stats = 2 * (8 + 8)  # Paddle registers _mean/_variance as parameters
    expected = 8 * 3 * 9 + 2 * 8 + 8 * 9 + 2 * 8
    assert prof.params == expected == all_params - bn_stats
    assert sum(row.params for row in prof.layers) == prof.params


def test_reused_layer_counted_per_call():
    class Twice(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6, bias_attr=False)

        def forward(self, x):
            return self.fc(self.fc(x))

    prof = _single(Twice(), (6,))
    (row,) = prof.layers
    assert row.calls == 2 and row.macs == 2 * 36 and prof.params == 36
    assert row.memory_bytes == 4 * 2 * (6 + 6 + 36)


# ---------------------------------------------------------------------------------------------
# Modes, hooks, API


def test_modes_restored_including_mixed_state():
    model = nn.Sequential(ConvBN(3, 4, 3), nn.Dropout(0.2))
    model.train()  # also puts the global dygraph tracer in train mode
    model[0].bn.training = False  # e.g. frozen BN while fine-tuning
    _single(model, (3, 6, 6))
    assert model.training and model[0].training and model[1].training
    assert not model[0].bn.training
    assert paddle.base.framework._dygraph_tracer()._train_mode


def test_hooks_and_patches_removed_when_forward_raises():
    class Broken(nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            paddle.matmul(self.fc(x), x, transpose_y=True)
            raise RuntimeError("boom")

    model = Broken()
    model.train()
    matmul = paddle.matmul
    with pytest.raises(RuntimeError, match="boom"):
        profile_model(model, input_size=(4,))
    assert paddle.matmul is matmul
    assert model.training and model.fc.training
    for layer in model.sublayers(include_self=True):
        assert not layer._forward_pre_hooks and not layer._forward_post_hooks


def test_to_dict_and_table():
    model = nn.Sequential(nn.Conv2D(3, 4, 3, bias_attr=False), nn.ReLU(), nn.Conv2D(4, 4, 1))
    prof = _single(model, (3, 8, 8))
    d = json.loads(json.dumps(prof.to_dict()))
    assert d["macs"] == prof.macs and d["flops"] == 2 * prof.macs
    assert d["params"] == prof.params and d["memory_bytes"] == prof.memory_bytes
    assert [row["name"] for row in d["layers"]] == ["0", "1", "2"]
    assert d["layers"][0]["input_shape"] == [1, 3, 8, 8]
    table = prof.table()
    assert "MACs" in table and "FLOPs (=2xMACs)" in table
    assert f"{prof.macs:,}" in table
    short = prof.table(max_rows=1)
    assert "2 more layers" in short and "FLOPs (=2xMACs)" in short


# ---------------------------------------------------------------------------------------------
# Registry names and the CLI (a test-only model registered for these tests)


class _Tiny(nn.Layer):
    def __init__(self, num_classes=10, deploy=False):
        super().__init__()
        self.deploy = deploy
        self.stem = nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=None if deploy else False)
        self.bn = nn.Identity() if deploy else nn.BatchNorm2D(8)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.pool(self.bn(self.stem(x)))
        return self.fc(x.reshape([0, -1]))


_TINY_INFO = {"input_size": (3, 16, 16), "params_m": 0.0004, "macs_g": 0.00002, "dataset": "cifar10"}


@pytest.fixture
def fake_registry():
    """``tiny_test_net`` registered while the test runs; returns the ``deploy`` flag of every
    model built from it."""
    built = []

    def build(num_classes=10, deploy=False):
        built.append(deploy)
        return _Tiny(num_classes, deploy=deploy)

    with temporary_models("tiny_test", build, {"tiny_test_net": {"info": _TINY_INFO}}):
        yield built


def _tiny_counts(deploy=False):
    macs = 8 * 8 * 8 * 3 * 9 + 8 * 10
    params = 8 * 3 * 9 + (8 if deploy else 2 * 8) + 8 * 10 + 10
    return params, macs


def test_profile_model_by_name(fake_registry):
    prof = profile_model("tiny_test_net")
    assert prof.input_size == (3, 16, 16)  # from model_info
    assert (prof.params, prof.macs) == _tiny_counts()
    prof = profile_model("tiny_test_net", input_size=(3, 32, 32), deploy=True)
    assert fake_registry == [False, True]
    assert prof.params == _tiny_counts(deploy=True)[0]
    assert prof.macs == 8 * 16 * 16 * 3 * 9 + 8 * 10


def test_cli_writes_json(fake_registry, tmp_path, capsys):
    out = tmp_path / "sub" / "profile.json"
    rc = cli.main(["--model", "tiny_*", "--per-layer", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiny_test_net" in printed and "FLOPs (=2xMACs)" in printed
    data = json.loads(out.read_text())
    (rec,) = data["models"]
    params, macs = _tiny_counts()
    assert rec["name"] == "tiny_test_net" and rec["input_size"] == [3, 16, 16]
    assert rec["params"] == params and rec["macs"] == macs and rec["flops"] == 2 * macs
    assert rec["published"]["params_m"] == _TINY_INFO["params_m"]
    assert math.isclose(rec["rel_diff"]["params"], (params / 1e6 - 0.0004) / 0.0004)
    assert math.isclose(rec["rel_diff"]["macs"], (macs / 1e9 - 0.00002) / 0.00002)
    assert [row["name"] for row in rec["layers"]] == ["stem", "bn", "pool", "fc"]
    assert sum(row["macs"] for row in rec["layers"]) == macs


def test_cli_deploy_and_other_input_size(fake_registry, tmp_path):
    out = tmp_path / "p.json"
    rc = cli.main(["--model", "tiny_test_net", "--deploy", "--input-size", "3", "32", "32",
                   "--batch-size", "2", "--json", str(out)])
    assert rc == 0 and fake_registry == [True]
    (rec,) = json.loads(out.read_text())["models"]
    assert rec["deploy"] and rec["batch_size"] == 2
    assert rec["macs"] == 2 * (8 * 16 * 16 * 3 * 9 + 8 * 10)
    assert rec["rel_diff"]["macs"] is None  # published MACs refer to 16x16, not 32x32


def test_cli_reports_failures(fake_registry, tmp_path):
    out = tmp_path / "p.json"
    assert cli.main(["--model", "no_such_net", "--json", str(out)]) == 1
    (rec,) = json.loads(out.read_text())["models"]
    assert "KeyError" in rec["error"]
