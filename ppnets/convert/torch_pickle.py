"""Read PyTorch checkpoints (``torch.save`` files) into numpy arrays, without torch.

Why: reference weights (timm, torchvision, official releases) come as torch pickles; ppnets must
read them where torch is not installed, and a pickle is a program -- ``torch.load`` without
``weights_only`` runs whatever the file asks for. Here the unpickler resolves globals from an
allow-list of what a state dict needs (the tensor rebuild functions, the typed storage classes,
``collections.OrderedDict``), each mapped to a numpy stand-in, and refuses every other global
before anything is called: :class:`~ppnets.convert.errors.UnsafePickleError` names it.

Formats, as torch/serialization.py (torch 1.6 to 2.x) writes and reads them:

* zip (the default since torch 1.6): ``<root>/data.pkl`` is the pickled object; each storage is
  a persistent id ``('storage', torch.<X>Storage, key, location, numel)`` whose bytes are the
  record ``<root>/data/<key>``; ``<root>/byteorder`` says ``little`` or ``big`` (files without
  it are little-endian, as torch assumes).
* legacy (``_use_new_zipfile_serialization=False``): consecutive pickles -- magic number,
  protocol version 1001, system info, the object (persistent ids with a sixth field,
  ``view_metadata``), the list of storage keys -- then each storage in that order as its element
  count (int64) and its bytes, both little-endian.
* the tar format of torch before 1.0 is recognised and refused
  (:class:`~ppnets.convert.errors.UnsupportedCheckpointError`).

A tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``: a view of
its storage in element units, so non-contiguous tensors and tensors sharing a storage come out
right; each is copied into its own C-contiguous array. bfloat16 becomes float32 exactly (a
bfloat16 is the upper half of a float32's bits).
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

from ppnets.convert.errors import UnsafePickleError, UnsupportedCheckpointError, corrupt_error

__all__ = ["load", "read_state_dict", "state_dict_of", "strip_module_prefix"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

# torch.<X>Storage -> dtype of its elements as stored (bfloat16: its 16 bits, widened on reading)
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}

# The state-dict containers read_checkpoint has always unwrapped, outermost first.
_CONTAINER_KEYS = ("state_dict", "model", "model_state", "module")


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.<X>Storage`` class named in a persistent id."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass(frozen=True)
class _Storage:
    """A storage as the pickle names it; its bytes are read after unpickling."""

    key: str
    type: _StorageType
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _index(value, what: str) -> int:
    if type(value) is not int or value < 0:
        raise pickle.UnpicklingError(f"{what} must be a non-negative int, found {value!r:.60}")
    return value


def _text(value, what: str) -> str:
    # Pickles written under Python 2 hold these fields as bytes.
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if not isinstance(value, str):
        raise pickle.UnpicklingError(f"{what} must be a string, found {value!r:.60}")
    return value


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"a tensor's storage is {type(storage).__name__}")
    if metadata:
        raise UnsupportedCheckpointError(
            f"a tensor carries metadata {metadata!r:.80} (a lazy conj/neg view): save "
            "tensor.resolve_conj().resolve_neg() instead")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise pickle.UnpicklingError(f"tensor size {size!r:.60} and stride {stride!r:.60}")
    return _TensorRef(storage, _index(storage_offset, "storage offset"),
                      tuple(_index(n, "size") for n in size),
                      tuple(_index(s, "stride") for s in stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    # An nn.Parameter is its data here; ``state`` (Python attributes on it) is not weights.
    return data


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves globals from ``_ALLOWED`` only and storages to :class:`_Storage` records,
    appended to ``storages``."""

    def __init__(self, file, path: str, storages: List[_Storage]):
        super().__init__(file)
        self._path = path
        self._storages = storages

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            # Protocol-2 pickles (torch's default) spell some globals by their Python 2 names.
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            raise UnsafePickleError(
                f"{self._path!r} asks for the global '{module}.{name}', which this reader "
                "refuses: it unpickles only what a state dict of tensors needs "
                f"({', '.join(sorted({f'{m}.{n}' for m, n in _ALLOWED if m != 'torch'}))}, "
                "torch.<dtype>Storage), so nothing in the file was run. A checkpoint that also "
                "holds other objects (training arguments, optimizer classes, a whole nn.Module) "
                "or tensors of other kinds (quantized, sparse, float8) must be reduced to a plain "
                "state dict where torch is installed, and only if the file is trusted: "
                "torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pth')."
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6)
                and _text(pid[0], "persistent id type") == "storage"):
            raise pickle.UnpicklingError(
                f"unexpected persistent id {pid!r:.80}: torch.save pickles name only storages "
                "(a pickled nn.Module is not a state dict)")
        _, storage_type, key, _location, numel = pid[:5]
        # Only torch < 1.0 wrote a storage view here; torch 1.x/2.x always write None.
        if len(pid) == 6 and pid[5] is not None:
            raise UnsupportedCheckpointError(
                "a storage view from a torch < 1.0 file: load and re-save it with a current torch")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"storage type {storage_type!r:.60} is not a storage")
        storage = _Storage(_text(key, "storage key"), storage_type, _index(numel, "numel"))
        self._storages.append(storage)
        return storage


def _tensor(ref: _TensorRef, buffers: Dict[str, bytes], byteorder: str) -> np.ndarray:
    """The array ``ref`` denotes in its storage's bytes, copied, C-contiguous, native order."""
    stored = ref.storage.type.dtype.newbyteorder("<" if byteorder == "little" else ">")
    data = buffers[ref.storage.key]
    if ref.storage.numel * stored.itemsize > len(data):
        raise ValueError(f"storage {ref.storage.key} holds {len(data)} bytes, fewer than its "
                         f"{ref.storage.numel} elements of {stored.itemsize} bytes")
    flat = np.frombuffer(data, dtype=stored, count=ref.storage.numel)
    if 0 in ref.size:
        view = np.empty(ref.size, dtype=stored)
    else:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
        if last >= ref.storage.numel:
            raise ValueError(f"a tensor of size {ref.size}, stride {ref.stride} at offset "
                             f"{ref.offset} reaches past its storage of {ref.storage.numel}")
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset:], shape=ref.size,
            strides=tuple(s * stored.itemsize for s in ref.stride), writeable=False)
    array = view.astype(stored.newbyteorder("="), order="C")  # a copy, native byte order
    if ref.storage.type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _resolve(obj, tensor: Callable[[_TensorRef], np.ndarray]):
    """``obj`` with every tensor reference replaced by its array."""
    if isinstance(obj, _TensorRef):
        return tensor(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v, tensor)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, tensor) for v in obj)
    return obj


def _load_zip(file, path: str):
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        roots = sorted(n[:-len("data.pkl")] for n in names
                       if n.endswith("/data.pkl") and n.count("/") == 1)
        if len(roots) != 1:
            raise ValueError(f"a zip archive with {len(roots)} '<root>/data.pkl' records; "
                             "torch.save writes exactly one")
        root = roots[0]
        byteorder = (archive.read(root + "byteorder").decode("ascii")
                     if root + "byteorder" in names else "little")
        if byteorder not in ("little", "big"):
            raise ValueError(f"unknown byte order {byteorder!r:.20}")
        storages: List[_Storage] = []
        obj = _Unpickler(io.BytesIO(archive.read(root + "data.pkl")), path, storages).load()
        buffers = {key: archive.read(f"{root}data/{key}") for key in {s.key for s in storages}}
    return _resolve(obj, lambda ref: _tensor(ref, buffers, byteorder))


def _load_legacy(file, path: str):
    storages: List[_Storage] = []

    def next_pickle():
        return _Unpickler(file, path, storages).load()

    if next_pickle() != _MAGIC_NUMBER:
        raise ValueError("no torch.save magic number at the start")
    version = next_pickle()
    if version != _PROTOCOL_VERSION:
        raise ValueError(f"legacy protocol version {version!r:.20}, expected {_PROTOCOL_VERSION}")
    next_pickle()  # system info: the data is little-endian whatever it says (torch's reader)
    obj = next_pickle()
    keys = next_pickle()
    if not isinstance(keys, list):
        raise ValueError(f"the storage key list is a {type(keys).__name__}")
    itemsize = {s.key: s.type.dtype.itemsize for s in storages}
    buffers = {}
    for key in keys:
        key = _text(key, "storage key")
        if key not in itemsize:
            raise ValueError(f"storage {key!r:.40} is listed but no tensor uses it")
        header = file.read(8)
        if len(header) != 8:
            raise EOFError(f"the file ends before the data of storage {key}")
        count = int.from_bytes(header, "little")
        nbytes = count * itemsize[key]
        buffers[key] = file.read(nbytes)
        if len(buffers[key]) != nbytes:
            raise EOFError(f"storage {key} ends after {len(buffers[key])} of {nbytes} bytes")
    missing = set(itemsize) - set(buffers)
    if missing:
        raise ValueError(f"{len(missing)} storages used by tensors have no data")
    return _resolve(obj, lambda ref: _tensor(ref, buffers, "little"))


def load(path: str):
    """The object ``torch.save`` wrote to ``path``, every tensor as a numpy array.

    Raises :class:`~ppnets.convert.errors.CorruptCheckpointError` for a truncated or damaged
    file, :class:`~ppnets.convert.errors.UnsafePickleError` for a pickle that asks for anything
    beyond tensors and containers, and :class:`~ppnets.convert.errors.UnsupportedCheckpointError`
    for a torch < 1.0 file.
    """
    with open(path, "rb") as file:
        magic = file.read(4)
        file.seek(0)
        try:
            if magic.startswith(b"PK"):
                return _load_zip(file, path)
            if tarfile.is_tarfile(path):
                raise UnsupportedCheckpointError(
                    "the tar format of torch < 1.0: load and re-save it with a current torch "
                    "(torch.save(torch.load(path), 'new.pth')), then read that")
            return _load_legacy(file, path)
        except UnsafePickleError:
            raise
        except UnsupportedCheckpointError as exc:
            raise UnsupportedCheckpointError(f"cannot read {path!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a damaged zip or pickle fails in many ways
            raise corrupt_error(path, "torch", exc) from exc


def strip_module_prefix(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Keys without the ``module.`` that (Distributed)DataParallel puts before every name."""
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def state_dict_of(obj) -> Dict[str, np.ndarray]:
    """The flat ``{key: array}`` in a loaded checkpoint: inside ``state_dict``/``model``/
    ``model_state``/``module`` containers, arrays only, without ``module.`` prefixes."""
    while isinstance(obj, dict):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise ValueError(f"the checkpoint holds a {type(obj).__name__}, not a state dict "
                         "(a dict of tensors)")
    return strip_module_prefix({k: v for k, v in obj.items() if isinstance(v, np.ndarray)})


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """``{key: array}`` of the ``torch.save`` checkpoint at ``path`` (see :func:`load` and
    :func:`state_dict_of`)."""
    return state_dict_of(load(path))
