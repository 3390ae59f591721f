"""Torch side of tests/weights/test_torch_pickle.py: writes checkpoints with ``torch.save``.

    python tests/weights/torch_checkpoints.py OUT_DIR

Runs in its own process (torch and paddle never share one). For each case ``<name>`` it writes
``OUT_DIR/<name>.pth`` (or the suffix named below) and ``OUT_DIR/<name>.npz``, the flat state
dict a reader must return: every tensor as ``torch.load`` gives it back, made contiguous,
bfloat16 widened to float32. The expected arrays come from torch's own loader reading the file
just written, never from the values we meant to write.
"""
from __future__ import annotations

import os
import sys
import zipfile

import numpy as np
import timm
import torch
import torchvision


def _dtypes_state(gen: torch.Generator) -> dict:
    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    return {
        "f32": randn(2, 3, 4),
        "f64": randn(5).double(),
        "f16": randn(3, 2).half(),
        "bf16": randn(4, 3).bfloat16(),
        "i64": torch.randint(-2**40, 2**40, (6,), generator=gen),
        "i32": torch.randint(-1000, 1000, (2, 2), generator=gen, dtype=torch.int32),
        "i16": torch.randint(-300, 300, (3,), generator=gen, dtype=torch.int16),
        "i8": torch.randint(-100, 100, (3,), generator=gen, dtype=torch.int8),
        "u8": torch.randint(0, 255, (4,), generator=gen, dtype=torch.uint8),
        "bool": randn(7) > 0,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }


def _views_state(gen: torch.Generator) -> dict:
    base = torch.randn(10, generator=gen)
    conv = torch.randn(4, 3, 3, 3, generator=gen)
    return {
        "transposed": torch.randn(3, 5, generator=gen).t(),
        "strided": torch.randn(4, 6, generator=gen)[:, ::2],
        "offset": torch.randn(8, generator=gen)[3:],
        "shared_slice": base[2:6],
        "shared_reshape": base.view(2, 5),
        "shared_step": base[::3],
        "expanded": torch.randn(3, 1, generator=gen).expand(3, 4),
        "channels_last": conv.to(memory_format=torch.channels_last),
        "permuted_bf16": torch.randn(2, 3, 4, generator=gen).bfloat16().permute(2, 0, 1),
    }


def _params_state(gen: torch.Generator) -> dict:
    with_attr = torch.nn.Parameter(torch.randn(3, generator=gen))
    with_attr.note = "a Python attribute, pickled as the parameter's state"
    return {"plain": torch.nn.Parameter(torch.randn(2, 2, generator=gen)), "with_attr": with_attr}


def _big_endian_copy(src: str, dst: str) -> None:
    """``src`` (float32 tensors only) rewritten as a big-endian machine would have saved it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, dtype="<f4").astype(">f4").tobytes()
            zout.writestr(info, data)


def _expected(path: str, unwrap) -> dict:
    """The flat state dict torch itself reads back from ``path``."""
    state = unwrap(torch.load(path, map_location="cpu", weights_only=True))
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).detach().contiguous().numpy()
            for k, v in state.items()}


def main(out: str) -> None:
    gen = torch.Generator().manual_seed(0)
    dtypes, views = _dtypes_state(gen), _views_state(gen)
    torch.manual_seed(0)
    timm_state = timm.create_model("mobilenetv3_small_050").state_dict()
    tv_state = torchvision.models.shufflenet_v2_x0_5().state_dict()
    checkpoints = {
        # name: (file name, object saved, how to find the flat state dict in what torch loads)
        "dtypes": ("dtypes.pth", dtypes, lambda o: o),
        "views": ("views.pth", views, lambda o: o),
        "params": ("params.pt", _params_state(gen), lambda o: o),
        "nested": ("nested.pth.tar",
                   {"model": {f"module.{k}": v for k, v in dtypes.items()}, "epoch": 3,
                    "best": 0.5, "history": [1, 2.5], "tags": ("a", None, True)},
                   lambda o: {k[len("module."):]: v for k, v in o["model"].items()}),
        "state_dict_module": ("state_dict_module.ckpt", {"state_dict": {"module": views}},
                              lambda o: o["state_dict"]["module"]),
        "timm": ("timm.bin", timm_state, lambda o: o),
        "torchvision": ("torchvision.pth", tv_state, lambda o: o),
    }
    for name, (file_name, obj, unwrap) in checkpoints.items():
        path = os.path.join(out, file_name)
        torch.save(obj, path)
        np.savez(os.path.join(out, f"{name}.npz"), **_expected(path, unwrap))
    for name in ("dtypes", "views"):
        path = os.path.join(out, f"legacy_{name}.pth")
        torch.save(checkpoints[name][1], path, _use_new_zipfile_serialization=False)
        np.savez(os.path.join(out, f"legacy_{name}.npz"), **_expected(path, lambda o: o))
    little, big = os.path.join(out, "little_f32.pth"), os.path.join(out, "big_endian.pth")
    torch.save({k: v for k, v in dtypes.items() if v.dtype == torch.float32}, little)
    _big_endian_copy(little, big)
    np.savez(os.path.join(out, "big_endian.npz"), **_expected(big, lambda o: o))


if __name__ == "__main__":
    main(sys.argv[1])
