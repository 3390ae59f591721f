"""ppnets.convert.torch_pickle: torch.save files read without torch, and without running them.

The files come from ``torch.save`` in a subprocess (torch_checkpoints.py), each with the arrays
torch's own loader reads back from it; ours must be equal, dtype and shape included. Malicious and
damaged files are made here, without torch.
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

import ppnets
from ppnets.convert import (CorruptCheckpointError, UnsafePickleError, UnsupportedCheckpointError,
                            read_checkpoint, torch_pickle)

# One xdist worker runs every test of tests/weights (--dist loadgroup), so the torch-side files
# are written once, by one subprocess, not raced for by several workers.
pytestmark = pytest.mark.xdist_group("weights")

# case -> file torch_checkpoints.py writes (the suffixes read_checkpoint routes to this reader)
CASES = {"dtypes": "dtypes.pth", "views": "views.pth", "params": "params.pt",
         "nested": "nested.pth.tar", "state_dict_module": "state_dict_module.ckpt",
         "timm": "timm.bin", "torchvision": "torchvision.pth", "legacy_dtypes": "legacy_dtypes.pth",
         "legacy_views": "legacy_views.pth", "big_endian": "big_endian.pth"}


@pytest.mark.parametrize("case", CASES)
def test_reads_what_torch_reads(torch_checkpoints, case):
    state, kind = read_checkpoint(os.path.join(torch_checkpoints, CASES[case]))
    assert kind == "torch"
    with np.load(os.path.join(torch_checkpoints, f"{case}.npz")) as expected:
        assert sorted(state) == sorted(expected.files)
        for key in expected.files:
            assert (state[key].dtype, state[key].shape) == (expected[key].dtype,
                                                            expected[key].shape), key
            np.testing.assert_array_equal(state[key], expected[key], err_msg=key)
            assert state[key].flags.c_contiguous and state[key].flags.writeable


def test_whole_object_and_no_torch_import(torch_checkpoints):
    obj = torch_pickle.load(os.path.join(torch_checkpoints, "nested.pth.tar"))
    assert (obj["epoch"], obj["best"], obj["history"], obj["tags"]) == (3, 0.5, [1, 2.5],
                                                                       ("a", None, True))
    assert sorted(obj["model"]) == sorted(f"module.{k}" for k in torch_pickle.read_state_dict(
        os.path.join(torch_checkpoints, "dtypes.pth")))
    assert "torch" not in sys.modules


def test_torchvision_pth_loads_into_our_model(torch_checkpoints):
    path = os.path.join(torch_checkpoints, "torchvision.pth")
    model = ppnets.create_model("shufflenet_v2_x0_5", pretrained=path)
    with np.load(os.path.join(torch_checkpoints, "torchvision.npz")) as expected:
        np.testing.assert_array_equal(model.state_dict()["stem.0.conv.weight"].numpy(),
                                      expected["conv1.0.weight"])
    assert "torch" not in sys.modules


class _Call:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _zip_with_pickle(path, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")


@pytest.mark.parametrize("container", ["legacy", "zip"])
@pytest.mark.parametrize("call, name", [
    ((os.system, "touch {marker}"), os.system.__module__ + ".system"),
    ((exec, "open({marker!r}, 'w').close()"), "builtins.exec"),
    ((subprocess.call, ["touch", "{marker}"]), "subprocess.call"),
], ids=["os.system", "exec", "subprocess.call"])
def test_malicious_pickle_is_refused_unexecuted(tmp_path, container, call, name):
    marker = tmp_path / "executed"
    func, arg = call
    arg = ([a.format(marker=marker) for a in arg] if isinstance(arg, list)
           else arg.format(marker=marker))
    # The call hides inside an otherwise ordinary state dict.
    data = pickle.dumps({"weight": [1.0, 2.0], "bias": _Call(func, arg)}, protocol=2)
    path = tmp_path / "evil.pth"
    if container == "zip":
        _zip_with_pickle(path, data)
    else:
        path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as err:
        read_checkpoint(str(path))
    assert f"'{name}'" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


def test_pickled_module_is_refused(tmp_path):
    """What torch.save(model) writes: a global naming the module's class, never called here."""
    path = tmp_path / "model.pth"
    _zip_with_pickle(path, b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81.")
    with pytest.raises(UnsafePickleError, match="'torch.nn.modules.linear.Linear'"):
        read_checkpoint(str(path))


# A flipped data byte is only detectable in the zip format (each record has a CRC-32).
@pytest.mark.parametrize("case, damage", [
    ("timm", "truncated"), ("timm", "flipped"), ("legacy_dtypes", "truncated"),
    ("timm", "garbage"), ("timm", "empty")])
def test_damaged_file_is_corrupt(torch_checkpoints, tmp_path, case, damage):
    data = open(os.path.join(torch_checkpoints, CASES[case]), "rb").read()
    path = tmp_path / "w.pth"
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "flipped":
        at = len(data) // 2  # inside the tensor data, which is most of the file
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    elif damage == "garbage":
        data = b"<html>503 Service Unavailable</html>" * 10
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(CorruptCheckpointError) as err:
        read_checkpoint(str(path))
    msg = str(err.value)
    assert str(path) in msg and "PyTorch pickle" in msg and "download it again" in msg


def test_torch_before_1_0_tar_is_unsupported(tmp_path):
    path = tmp_path / "old.pth"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("sys_info")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"\x80\x02N."))
    with pytest.raises(UnsupportedCheckpointError, match="torch < 1.0"):
        read_checkpoint(str(path))


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    _zip_with_pickle(path, pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        read_checkpoint(str(path))
