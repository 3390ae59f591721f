"""LeViT's features (timm's forward_intermediates for the linear-token LeViT): every stage works
on tokens, which come back as NCHW maps of the stage's grid. The registry-wide feature tests and
tests/parity cover shapes, export and timm equality."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppnets.models.base import NoHead
from ppnets.models.levit import LeViT
from tests.conftest import randomize_bn


def _x(shape=(2, 3, 64, 64), seed=0):
    return paddle.to_tensor(np.random.RandomState(seed).standard_normal(shape).astype("float32"))


def _tiny():
    """64x64 inputs: 4x4, 2x2 and 1x1 token grids."""
    paddle.seed(0)
    model = LeViT(embed_dims=(32, 48, 64), key_dim=16, num_heads=(2, 3, 4), depths=(1, 1, 1),
                  img_size=64, num_classes=5)
    randomize_bn(model)
    return model.eval()


def test_first_stage_map_is_the_stem_grid():
    """With its residual branches zeroed, stage 0 passes the stem's tokens on: its map must be
    the stem's 4x4 map itself."""
    model, x = _tiny(), _x()
    for block in model.stages[0].blocks:
        for linear_bn in (block.attn.proj, block.mlp.ln2):
            linear_bn.bn.weight.set_value(paddle.zeros_like(linear_bn.bn.weight))
            linear_bn.bn.bias.set_value(paddle.zeros_like(linear_bn.bn.bias))
    with paddle.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
        stem = model.stem(x).numpy()
    assert [m.shape for m in maps] == [[2, 32, 4, 4], [2, 48, 2, 2], [2, 64, 1, 1]]
    np.testing.assert_allclose(maps[0].numpy(), stem, rtol=0, atol=1e-6)


@pytest.mark.parametrize("stage,grid", [(1, 2), (2, 1)])
def test_each_map_is_its_stage_tokens_on_the_grid(stage, grid):
    model, x = _tiny(), _x()
    with paddle.no_grad():
        tokens, maps = model.forward_intermediates(x, indices=[stage], stop_early=True)
    n, length, channels = tokens.shape
    assert length == grid * grid
    expected = tokens.numpy().reshape(n, grid, grid, channels).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(maps[0].numpy(), expected)


def test_prune_drops_later_stages_and_both_heads():
    model, x = _tiny(), _x()
    with paddle.no_grad():
        full = model.forward_intermediates(x, intermediates_only=True)
    assert _tiny().prune_intermediate_layers(1) == [2]  # an int takes the last n features
    assert model.prune_intermediate_layers([0, 1], prune_head=False) == [0, 1]
    assert len(model.stages) == 2 and model.num_features == 48
    assert isinstance(model.head, NoHead) and model.head_dist is None  # sized for stage 2
    with paddle.no_grad():
        pruned = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        out = model(x)  # no head, no pooling: stage 1's tokens, as timm's pruned model
    for a, b in zip(pruned, full[:2]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert out.shape == [2, 4, 48]
