"""Parameters, MACs and memory access cost of a Paddle model, per layer and in total.

Conventions (see docs/complexity.md for the full discussion and the differences with
``paddle.flops``):

* **MACs** (multiply-accumulates) count convolutions, linear layers and matrix products only:
  conv ``out_numel * (Cin / groups) * prod(kernel)``, transposed conv
  ``in_numel * (Cout / groups) * prod(kernel)``, linear ``out_numel * in_features``, matmul
  ``out_numel * K``. Bias adds, normalisation, activations, pooling and element-wise ops count 0,
  as the papers of the zoo do. **FLOPs = 2 x MACs**, always labelled as such.
* **Memory access cost** (ShuffleNetV2, arXiv:1807.11164, Sec. 2): per leaf layer call, the
  elements of its tensor inputs + its tensor outputs + its own parameters (BN running statistics
  included, since inference reads them), times 4 bytes (float32). For a 1x1 conv this is exactly
  the paper's ``h*w*(c1 + c2) + c1*c2``. Pass-through layers (``Identity``, dropout and drop-path
  in eval) touch nothing. Functional ops outside layers (residual add, concat, reshape) are not
  counted. Functional matrix products (``@``, ``paddle.matmul``/``bmm``/``mm``/``einsum``,
  ``F.linear``/``F.conv*``/``F.scaled_dot_product_attention`` outside the layers that own them)
  add their MACs and operand + result traffic to the innermost layer executing them; such a
  layer is then costed as a composite (its products, its children, its own parameters), not by
  its boundary inputs/outputs.
* **Params** are all parameters of the model except BN running mean/variance (Paddle stores those
  as non-trainable parameters; timm/torch and the papers do not count them).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

import ppnets
from ppnets.layers import DropPath

__all__ = ["profile_model", "ModelProfile", "LayerStat", "BYTES_PER_ELEMENT"]

BYTES_PER_ELEMENT = 4  # float32

_CONV_TRANSPOSE = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
_CONV = (nn.Conv1D, nn.Conv2D, nn.Conv3D) + _CONV_TRANSPOSE
# Layers whose MACs the post-hook computes from their weights; a functional matmul/linear/conv
# issued inside one of them is their own kernel and must not be counted a second time.
_HOOK_COUNTED = _CONV + (nn.Linear,)
_DROPOUT = (nn.Dropout, nn.Dropout2D, nn.Dropout3D, nn.AlphaDropout)
_BN_STATS = ("_mean", "_variance")
_ROOT_NAME = "(model)"


@dataclass
class LayerStat:
    """One row of the per-layer table. ``macs`` and ``memory_bytes`` are summed over ``calls``
    (a layer reused in the forward pass is listed once); ``params`` are the layer's own
    parameters (BN running statistics excluded), counted once."""

    name: str
    type: str
    input_shape: Optional[Tuple[int, ...]]
    output_shape: Optional[Tuple[int, ...]]
    params: int
    macs: int
    memory_bytes: int
    calls: int = 1

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        for key in ("input_shape", "output_shape"):
            d[key] = list(d[key]) if d[key] is not None else None
        d["flops"] = 2 * self.macs
        return d


@dataclass
class ModelProfile:
    """Totals and per-layer rows of one profiled forward pass (see :func:`profile_model`)."""

    name: str
    input_size: Tuple[int, ...]
    batch_size: int
    params: int
    macs: int
    memory_bytes: int
    layers: List[LayerStat] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """FLOPs counted as 2 x MACs (one multiply + one add per MAC)."""
        return 2 * self.macs

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "flops_convention": "FLOPs = 2 x MACs",
            "memory_bytes": self.memory_bytes,
            "bytes_per_element": BYTES_PER_ELEMENT,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def totals_line(self) -> str:
        return (f"**Total** ({self.name}, input {self.batch_size}x"
                f"{'x'.join(str(s) for s in self.input_size)}): "
                f"params {self.params:,} ({self.params / 1e6:.3f} M) | "
                f"MACs {self.macs:,} ({self.macs / 1e9:.4f} G) | "
                f"FLOPs (=2xMACs) {self.flops:,} ({self.flops / 1e9:.4f} G) | "
                f"memory access {self.memory_bytes:,} B "
                f"({self.memory_bytes / 1e6:.2f} MB, float32)")

    def table(self, max_rows: Optional[int] = None) -> str:
        """Markdown table of the layers (the first ``max_rows`` if given) and the totals line."""
        header = ["#", "layer", "type", "input", "output", "params", "MACs", "memory (B)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        rows = self.layers if max_rows is None else self.layers[:max_rows]
        for i, layer in enumerate(rows):
            calls = f" (x{layer.calls})" if layer.calls > 1 else ""
            lines.append("| " + " | ".join([
                str(i), f"`{layer.name}`{calls}", layer.type, _fmt_shape(layer.input_shape),
                _fmt_shape(layer.output_shape), f"{layer.params:,}", f"{layer.macs:,}",
                f"{layer.memory_bytes:,}"]) + " |")
        if len(rows) < len(self.layers):
            lines.append(f"| ... | {len(self.layers) - len(rows)} more layers | | | | | | |")
        lines.append("")
        lines.append(self.totals_line())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.totals_line()


def _fmt_shape(shape) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)


def _shape(t) -> Tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _numel(t) -> int:
    if isinstance(t, paddle.Tensor):
        return math.prod(_shape(t))
    return 0  # Python scalars and None carry no tensor traffic worth counting


def _tensors(obj) -> List[paddle.Tensor]:
    """Tensors in a (nested) tuple/list/dict, in order."""
    if isinstance(obj, paddle.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _is_leaf(layer: nn.Layer) -> bool:
    return next(iter(layer.children()), None) is None


def _bn_stat_ids(model: nn.Layer) -> set:
    """ids of BN running mean/variance, which Paddle registers as (non-trainable) parameters."""
    ids = set()
    for layer in model.sublayers(include_self=True):
        for key in _BN_STATS:
            p = layer._parameters.get(key)
            if p is not None:
                ids.add(id(p))
    return ids


def _is_pass_through(layer: nn.Layer, inputs: List[paddle.Tensor], outputs: List[paddle.Tensor]):
    """Layers that move no data at inference: identity, and dropout/drop-path in eval."""
    if isinstance(layer, nn.Identity) or (isinstance(layer, _DROPOUT + (DropPath,))
                                          and not layer.training):
        return True
    return bool(outputs) and all(any(o is i for i in inputs) for o in outputs)


def _layer_macs(layer: nn.Layer, inputs: List[paddle.Tensor], outputs: List[paddle.Tensor]) -> int:
    if not inputs or not outputs:
        return 0
    if isinstance(layer, _CONV_TRANSPOSE):
        # weight [Cin, Cout/groups, *k]: every input element meets Cout/groups * prod(k) weights
        return _numel(inputs[0]) * math.prod(_shape(layer.weight)[1:])
    if isinstance(layer, _CONV):
        # weight [Cout, Cin/groups, *k]: every output element is a Cin/groups * prod(k) dot product
        return _numel(outputs[0]) * math.prod(_shape(layer.weight)[1:])
    if isinstance(layer, nn.Linear):
        # Paddle's Linear weight is [in_features, out_features]
        return _numel(outputs[0]) * int(layer.weight.shape[0])
    return 0


# ----------------------------------------------------------------------------------------------
# Functional ops: MACs and memory of matrix products issued by layer code (attention).


def _arg(args, kwargs, index, names, default=None):
    if len(args) > index:
        return args[index]
    for name in names:
        if name in kwargs:
            return kwargs[name]
    return default


def _matmul_cost(args, kwargs, out, swap=False):
    x = _arg(args, kwargs, 0, ("x", "input"))
    y = _arg(args, kwargs, 1, ("y", "mat2", "other"))
    if swap:  # Tensor.__rmatmul__(self, other) computes other @ self
        x, y = y, x
    trans_x = bool(_arg(args, kwargs, 2, ("transpose_x",), False)) and not swap
    if isinstance(x, paddle.Tensor):
        xs = _shape(x)
        k = xs[0] if len(xs) == 1 else (xs[-2] if trans_x else xs[-1])
    else:
        k = 0
    return _numel(out) * k, _numel(x) + _numel(y) + _numel(out)


def _linear_cost(args, kwargs, out):
    x = _arg(args, kwargs, 0, ("x", "input"))
    w = _arg(args, kwargs, 1, ("weight",))
    b = _arg(args, kwargs, 2, ("bias",))
    return _numel(out) * int(w.shape[0]), _numel(x) + _numel(w) + _numel(b) + _numel(out)


def _conv_cost(args, kwargs, out):
    x = _arg(args, kwargs, 0, ("x", "input"))
    w = _arg(args, kwargs, 1, ("weight",))
    b = _arg(args, kwargs, 2, ("bias",))
    return (_numel(out) * math.prod(_shape(w)[1:]),
            _numel(x) + _numel(w) + _numel(b) + _numel(out))


def einsum_macs(equation: str, operands: Sequence[paddle.Tensor]) -> int:
    """MACs of an einsum: the product of the sizes of all distinct indices (the naive loop nest).
    Exact for two operands; for three or more it is the cost of one fused loop, an upper bound
    of a pairwise contraction. A single operand (transpose, reduction) costs 0."""
    if len(operands) < 2:
        return 0
    lhs = equation.replace(" ", "").split("->")[0]
    sizes: Dict[Any, int] = {}
    for term, op in zip(lhs.split(","), operands):
        shape = _shape(op)
        if "..." in term:
            head, tail = term.split("...")
            n_ell = len(shape) - len(head) - len(tail)
            # broadcast dims are aligned from the right, so label them by distance from the end
            labels = list(head) + [("...", n_ell - i) for i in range(n_ell)] + list(tail)
        else:
            labels = list(term)
        for label, size in zip(labels, shape):
            sizes[label] = max(sizes.get(label, 1), size)
    return math.prod(sizes.values())


def _einsum_cost(args, kwargs, out):
    equation = _arg(args, kwargs, 0, ("equation",))
    operands = _tensors(list(args[1:]) + list(kwargs.get("operands", [])))
    return einsum_macs(equation, operands), sum(_numel(t) for t in operands) + _numel(out)


def _sdpa_cost(args, kwargs, out):
    # Paddle's layout is [batch, seq, heads, head_dim] (or without batch): Q K^T then A V.
    q = _arg(args, kwargs, 0, ("query",))
    k = _arg(args, kwargs, 1, ("key",))
    v = _arg(args, kwargs, 2, ("value",))
    qs, ks, vs = _shape(q), _shape(k), _shape(v)
    macs = math.prod(qs[:-1]) * ks[-3] * (qs[-1] + vs[-1])
    # the fused kernel never writes the attention matrix; count what it reads and writes
    return macs, _numel(q) + _numel(k) + _numel(v) + _numel(out)


def _patch_targets():
    """(owner, attribute, cost function) of every functional op we count."""
    targets = [
        (paddle, "matmul", _matmul_cost),
        (paddle, "mm", _matmul_cost),
        (paddle, "bmm", _matmul_cost),
        (paddle, "einsum", _einsum_cost),
        (paddle.Tensor, "__matmul__", _matmul_cost),
        (paddle.Tensor, "__rmatmul__", functools.partial(_matmul_cost, swap=True)),
        (paddle.Tensor, "matmul", _matmul_cost),
        (paddle.Tensor, "mm", _matmul_cost),
        (paddle.Tensor, "bmm", _matmul_cost),
        (F, "linear", _linear_cost),
        (F, "conv1d", _conv_cost),
        (F, "conv2d", _conv_cost),
        (F, "conv3d", _conv_cost),
        (F, "scaled_dot_product_attention", _sdpa_cost),
    ]
    return [t for t in targets if hasattr(t[0], t[1])]


# ----------------------------------------------------------------------------------------------


@dataclass
class _Record:
    name: str
    layer: nn.Layer
    order: int
    leaf: bool
    params: int
    input_shape: Optional[Tuple[int, ...]] = None
    output_shape: Optional[Tuple[int, ...]] = None
    macs: int = 0
    memory: int = 0  # elements
    calls: int = 0


class _Counter:
    """Hooks and functional patches of one profiling run."""

    def __init__(self, model: nn.Layer, bn_stats: set):
        self.model = model
        self.records: Dict[int, _Record] = {}
        # [layer, functional ops counted in this call] of the layers currently executing
        self.stack: List[list] = []
        self.functional_depth = 0
        self.handles = []
        self.patches = []
        self.bn_stats = bn_stats
        self.names = {id(layer): (name or _ROOT_NAME)
                      for name, layer in model.named_sublayers(include_self=True)}

    # -- layer hooks ----------------------------------------------------------------------------
    def _record(self, layer: nn.Layer) -> _Record:
        rec = self.records.get(id(layer))
        if rec is None:
            own = [p for p in layer.parameters(include_sublayers=False)]
            rec = _Record(name=self.names.get(id(layer), type(layer).__name__), layer=layer,
                          order=len(self.records), leaf=_is_leaf(layer),
                          params=sum(_numel(p) for p in own if id(p) not in self.bn_stats))
            self.records[id(layer)] = rec
        return rec

    def _pre(self, layer, args, kwargs):
        self._record(layer)  # first-call order = table order (parents before children)
        # [layer, functional ops counted inside it, its inputs]: the post hook reads the keyword
        # inputs from here (Paddle 3.0's post hooks do not receive them)
        self.stack.append([layer, 0, (args, kwargs)])

    def _post(self, layer, args, output):
        functional_ops, call_inputs = 0, args
        if self.stack and self.stack[-1][0] is layer:
            _, functional_ops, call_inputs = self.stack.pop()
        rec = self._record(layer)
        rec.calls += 1
        inputs = _tensors(call_inputs)
        outputs = _tensors(output)
        if rec.input_shape is None and inputs:
            rec.input_shape = _shape(inputs[0])
        if rec.output_shape is None and outputs:
            rec.output_shape = _shape(outputs[0])
        # All of the layer's own parameters are read, BN running statistics included.
        own = sum(_numel(p) for p in layer.parameters(include_sublayers=False))
        if rec.leaf and not functional_ops:
            # a leaf layer is one op: it reads its inputs and weights and writes its outputs
            rec.macs += _layer_macs(layer, inputs, outputs)
            if not _is_pass_through(layer, inputs, outputs):
                rec.memory += sum(map(_numel, inputs)) + sum(map(_numel, outputs)) + own
        else:
            # A container (or a leaf that issued counted matrix products) is a composite: its
            # traffic is that of its children and of its products, already added, plus its own
            # parameters (layer scale, position biases) read by its functional code.
            rec.memory += own

    # -- functional ops -------------------------------------------------------------------------
    def _functional(self, cost_fn, fn):
        counter = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if counter.functional_depth:  # nested call of another patched op: counted once
                return fn(*args, **kwargs)
            counter.functional_depth += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                counter.functional_depth -= 1
            top = counter.stack[-1] if counter.stack else [counter.model, 0]
            owner = top[0]
            if not isinstance(owner, _HOOK_COUNTED):
                macs, memory = cost_fn(args, kwargs, out)
                top[1] += 1
                rec = counter._record(owner)
                rec.macs += macs
                rec.memory += memory
            return out

        return wrapper

    def __enter__(self):
        try:
            for _, layer in self.model.named_sublayers(include_self=True):
                self.handles.append(layer.register_forward_pre_hook(self._pre, with_kwargs=True))
                self.handles.append(layer.register_forward_post_hook(self._post))
            for owner, attr, cost_fn in _patch_targets():
                had_own = attr in vars(owner)
                original = vars(owner)[attr] if had_own else getattr(owner, attr)
                self.patches.append((owner, attr, original, had_own))
                setattr(owner, attr, self._functional(cost_fn, getattr(owner, attr)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        while self.patches:
            owner, attr, original, had_own = self.patches.pop()
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)
        while self.handles:
            self.handles.pop().remove()
        self.stack.clear()
        return False

    def layer_stats(self) -> List[LayerStat]:
        rows = []
        for rec in sorted(self.records.values(), key=lambda r: r.order):
            # Containers are listed only when they do work of their own (functional matmuls,
            # own parameters); otherwise their children's rows already say everything.
            if not rec.leaf and rec.macs == 0 and rec.memory == 0 and rec.params == 0:
                continue
            if rec.calls == 0:
                continue
            rows.append(LayerStat(name=rec.name, type=type(rec.layer).__name__,
                                  input_shape=rec.input_shape, output_shape=rec.output_shape,
                                  params=rec.params, macs=rec.macs,
                                  memory_bytes=rec.memory * BYTES_PER_ELEMENT, calls=rec.calls))
        return rows


def _tracer_train_mode() -> Optional[bool]:
    # eval()/train() also flip the dygraph tracer's global mode; restore it as well.
    from paddle.base import framework

    tracer = framework._dygraph_tracer()
    return None if tracer is None else bool(tracer._train_mode)


def _set_tracer_train_mode(mode: Optional[bool]) -> None:
    from paddle.base import framework

    tracer = framework._dygraph_tracer()
    if tracer is not None and mode is not None:
        tracer.train_mode() if mode else tracer.eval_mode()


def count_params(model: nn.Layer) -> int:
    """All parameters except BN running mean/variance (what timm, torchvision and papers count)."""
    bn_stats = _bn_stat_ids(model)
    return sum(_numel(p) for p in model.parameters() if id(p) not in bn_stats)


def profile_model(model: Union[nn.Layer, str], input_size: Optional[Sequence[int]] = None,
                  batch_size: int = 1, **create_kwargs) -> ModelProfile:
    """Count params, MACs (FLOPs = 2 x MACs) and memory access of one forward pass.

    ``model`` is an ``nn.Layer`` or a registry name (built with ``ppnets.create_model(name,
    **create_kwargs)``, e.g. ``deploy=True``). ``input_size`` is (C, H, W) without the batch; it
    defaults to the registry's ``input_size`` for a named model (or a model built by
    ``create_model``) and to (3, 224, 224) otherwise. The forward pass runs in eval mode under
    ``no_grad``; every sublayer's train/eval mode is restored and every hook and patch removed
    afterwards, also when the forward raises.
    """

    if isinstance(model, str):
        name = model
        model = ppnets.create_model(name, **create_kwargs)
    elif isinstance(model, nn.Layer):
        if create_kwargs:
            raise TypeError(f"profile_model got keyword arguments {sorted(create_kwargs)} for an "
                            "nn.Layer; they are create_model() options and need a registry name")
        name = getattr(model, "model_name", None) or type(model).__name__
    else:
        raise TypeError(f"profile_model expects an nn.Layer or a registry name, got "
                        f"{type(model).__name__}")
    if input_size is None:
        registered = getattr(model, "model_name", None)
        input_size = (ppnets.model_info(registered)["input_size"] if registered
                      else (3, 224, 224))
    input_size = tuple(int(s) for s in input_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    bn_stats = _bn_stat_ids(model)
    modes = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
    tracer_train = _tracer_train_mode()
    counter = _Counter(model, bn_stats)
    try:
        model.eval()
        x = paddle.randn([batch_size, *input_size], dtype="float32")
        with counter, paddle.no_grad():
            model(x)
    finally:
        # Per layer, so a mixed state (e.g. frozen BN inside a training model) survives.
        for layer, training in modes:
            layer.training = training
        _set_tracer_train_mode(tracer_train)
    layers = counter.layer_stats()
    return ModelProfile(name=name, input_size=input_size, batch_size=batch_size,
                        params=count_params(model),
                        macs=sum(layer.macs for layer in layers),
                        memory_bytes=sum(layer.memory_bytes for layer in layers),
                        layers=layers)
