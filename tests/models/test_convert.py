"""ppnets.convert: reading checkpoints of every format, and the errors a user sees."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

import ppnets
from ppnets.convert import CorruptCheckpointError, load_pretrained, read_checkpoint


def _state():
    model = ppnets.create_model("resnet20_cifar")
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _write(path, fmt, state):
    if fmt == "safetensors":
        from safetensors.numpy import save_file
        save_file(state, str(path))
    elif fmt == "npz":
        np.savez(str(path), **state)
    else:
        paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(path))


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pdparams"])
def test_each_format_reads_back(tmp_path, fmt):
    state = _state()
    path = tmp_path / f"w.{fmt}"
    _write(path, fmt, state)
    read, kind = read_checkpoint(str(path))
    assert kind == ("paddle" if fmt == "pdparams" else "torch")
    assert set(read) == set(state)
    for key in state:
        np.testing.assert_array_equal(read[key], state[key])


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pdparams"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_file_names_file_format_and_remedy(tmp_path, fmt, damage):
    path = tmp_path / f"w.{fmt}"
    if damage == "truncated":
        _write(path, fmt, _state())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"<html>503 Service Unavailable</html>" * 10)
    with pytest.raises(CorruptCheckpointError) as err:
        read_checkpoint(str(path))
    msg = str(err.value)
    assert str(path) in msg and "truncated or corrupt" in msg and "download it again" in msg
    assert {"safetensors": "safetensors file", "npz": "numpy .npz",
            "pdparams": "Paddle state dict"}[fmt] in msg


def test_corrupt_pretrained_through_create_model(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(CorruptCheckpointError, match="w.safetensors"):
        ppnets.create_model("resnet20_cifar", pretrained=str(path))


def test_weights_load_in_the_models_dtype(tmp_path):
    """float32 weights into a float64 model and float64 weights into a float32 one."""
    state = _state()
    path = tmp_path / "w64.pdparams"
    _write(path, "pdparams", {k: v.astype(np.float64) for k, v in state.items()})
    model = ppnets.create_model("resnet20_cifar")
    load_pretrained(model, str(path))
    assert {str(v.dtype) for v in model.state_dict().values()} == {"paddle.float32"}
    paddle.set_default_dtype("float64")
    try:
        model64 = ppnets.create_model("resnet20_cifar")
    finally:
        paddle.set_default_dtype("float32")
    load_pretrained(model64, str(path))
    assert {str(v.dtype) for v in model64.state_dict().values()} == {"paddle.float64"}
    np.testing.assert_array_equal(model64.state_dict()["conv1.conv.weight"].numpy(),
                                  state["conv1.conv.weight"].astype(np.float64))
