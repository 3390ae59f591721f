"""MobileViT-specific behaviour (registry-wide tests and tests/parity cover forward, export at the
test size, reparameterization and parity with timm, the latter at 96x96 where the last MobileViT
block resizes its 3x3 map to whole 2x2 patches)."""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import ppnets
from ppnets.models.mobilevit import InvertedResidual, MobileViTBlock, resize_bilinear
from ppnets.runtime import create_predictor, run_predictor
from tests.conftest import randomize_bn

NAMES = ["mobilevit_s", "mobilevit_xs", "mobilevit_xxs"]


def _x(shape, seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _eval_model(name, **kw):
    paddle.seed(0)
    model = ppnets.create_model(name, num_classes=5, **kw)
    randomize_bn(model)
    model.eval()
    return model


def test_registered_variants():
    assert ppnets.list_models("mobilevit*") == NAMES
    published = {"mobilevit_xxs": (1.3, 69.0), "mobilevit_xs": (2.3, 74.8),
                 "mobilevit_s": (5.6, 78.4)}
    for name in NAMES:
        info = ppnets.model_info(name)
        assert (info["params_m"], info["top1"]) == published[name]
        assert info["reference"]["name"] == name
        assert tuple(info["input_size"]) == (3, 256, 256)
        assert tuple(info["test_input_size"]) == (3, 64, 64)
        assert info["mean"] == (0.0, 0.0, 0.0) and info["std"] == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("name,widths,dims,final", [
    ("mobilevit_xxs", [16, 24, 48, 64, 80], [64, 80, 96], 320),
    ("mobilevit_xs", [32, 48, 64, 80, 96], [96, 120, 144], 384),
    ("mobilevit_s", [32, 64, 96, 128, 160], [144, 192, 240], 640),
])
def test_architecture_follows_the_paper_table(name, widths, dims, final):
    model = ppnets.create_model(name)
    assert [stage[-1].conv_fusion.conv._out_channels if isinstance(stage[-1], MobileViTBlock)
            else stage[-1].conv3_1x1.conv._out_channels for stage in model.stages] == widths
    vits = [b for b in model.sublayers() if isinstance(b, MobileViTBlock)]
    assert [b.conv_1x1._out_channels for b in vits] == dims
    assert [len(b.transformer) for b in vits] == [2, 4, 3]
    assert model.num_features == final
    expansion = 2 if name == "mobilevit_xxs" else 4
    first = model.stages[0][0]
    assert first.conv1_1x1.conv._out_channels == 16 * expansion


def test_shortcut_and_drop_path_only_on_residual_blocks():
    assert InvertedResidual(16, 16, 1).has_shortcut
    assert not InvertedResidual(16, 16, 2).has_shortcut
    assert not InvertedResidual(16, 32, 1).has_shortcut
    assert InvertedResidual(16, 32, 1, drop_path=0.3).drop_path.drop_prob == 0.0
    model = ppnets.create_model("mobilevit_xxs", drop_path_rate=0.1)
    rates = [l.drop_prob for l in model.sublayers() if type(l).__name__ == "DropPath"]
    assert max(rates) == pytest.approx(0.1)  # the last MobileViT block's transformer layers


def test_unfold_is_the_patch_layout_and_fold_inverts_it():
    block = MobileViTBlock(4, 8, depth=1, patch_size=2)
    b, c, nh, nw, p = 2, 8, 3, 5, 2
    x = np.random.RandomState(0).standard_normal([b, c, nh * p, nw * p]).astype("float32")
    tokens = block._unfold(paddle.to_tensor(x), nh, nw).numpy()
    assert tokens.shape == (b * p * p, nh * nw, c)
    for bi in range(b):
        for py in range(p):
            for px in range(p):
                for iy in range(nh):
                    for ix in range(nw):
                        np.testing.assert_array_equal(
                            tokens[bi * p * p + py * p + px, iy * nw + ix],
                            x[bi, :, iy * p + py, ix * p + px])
    back = block._fold(paddle.to_tensor(tokens), nh, nw).numpy()
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("src,dst", [((3, 3), (4, 4)), ((4, 4), (3, 3)), ((7, 5), (8, 6)),
                                     ((8, 6), (7, 5)), ((1, 1), (2, 2))])
def test_matrix_resize_equals_bilinear_interpolation(src, dst):
    x = _x([2, 3] + list(src))
    expected = paddle.nn.functional.interpolate(x, size=list(dst), mode="bilinear",
                                                align_corners=False)
    np.testing.assert_allclose(resize_bilinear(x, dst).numpy(), expected.numpy(),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [64, 96, 100])
def test_any_input_size(size):
    model = _eval_model("mobilevit_xxs")
    with paddle.no_grad():
        out = model(_x([1, 3, size, size]))
    assert out.shape == [1, 5] and np.isfinite(out.numpy()).all()


def test_reparameterize_folds_every_batchnorm():
    model = _eval_model("mobilevit_xxs")
    x = _x([2, 3, 96, 96])
    with paddle.no_grad():
        before = model(x).numpy()
    model.reparameterize()
    assert not [l for l in model.sublayers() if isinstance(l, nn.BatchNorm2D)]
    with paddle.no_grad():
        after = model(x).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-5 * max(1.0, np.abs(before).max()))


def _export(model, spec_shape, path):
    spec = paddle.static.InputSpec(spec_shape, "float32", "x")
    paddle.jit.save(model, path, input_spec=[spec])


def test_export_with_patch_resizing(tmp_path):
    """96x96: the last MobileViT block resizes 3x3 -> 4x4 -> 3x3; the exported graph keeps it."""
    model = _eval_model("mobilevit_xxs")
    model.reparameterize()
    x = _x([1, 3, 96, 96])
    with paddle.no_grad():
        expected = model(x).numpy()
    prefix = str(tmp_path / "mvit")
    _export(model, [None, 3, 96, 96], prefix)
    predictor = create_predictor(prefix + ".json", prefix + ".pdiparams")
    got = run_predictor(predictor, x.numpy())[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_export_with_dynamic_spatial_size_fails_clearly(tmp_path):
    model = _eval_model("mobilevit_xxs")
    with pytest.raises(Exception, match="static input height and width"):
        _export(model, [None, 3, None, None], str(tmp_path / "dyn"))
