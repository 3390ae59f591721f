"""Paddle Lite op compatibility of an exported legacy program, before ``paddle_lite_opt`` runs.

For a ``.pdmodel`` and a target (``arm``, ``x86``) :func:`check_program` compares

* the operators of the program (parsed from its ProgramDesc), with
* what Paddle Lite itself says it supports on that target: ``Opt.print_supported_ops()`` (the
  listing of ``paddle_lite_opt --print_supported_ops=true --valid_targets=arm``; an op counts as
  supported when it has a kernel for the target or for ``kHost``), and Paddle Lite's own verdict
  on the model, ``Opt.check_if_model_supported(True)`` (``--print_model_ops=true``).

Ops ppnets knows to be bad in Paddle Lite 2.13 even though they are listed (``KNOWN_BAD``) are
reported too. For every unsupported or known-bad op, :func:`op_sources` names the model code
that produced it: the model is traced again into the old IR and the ``op_callstack`` attribute
of each op (absent from the saved program) gives the innermost ``ppnets`` frame, i.e. the layer
file, line and source text. ``FIXES`` says what ppnets does or recommends.
"""
from __future__ import annotations

import collections
import copy
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from ppnets.runtime import old_ir_ops

from . import lite

__all__ = ["program_ops", "check_program", "op_sources", "KNOWN_BAD",
           "FIXES", "IGNORED_OPS"]

IGNORED_OPS = {"feed", "fetch"}

# Listed by Paddle Lite but broken in 2.13 in the way ppnets models would use them.
KNOWN_BAD = {
    "flatten_contiguous_range": "segfaults in Paddle Lite 2.13 (paddle.flatten / nn.Flatten)",
    "relu6": "aborts in Paddle Lite 2.13 (nn.ReLU6 / F.relu6)",
    "set_value": "in-place slice assignment (x[:, :k] = conv(...)); not a Lite kernel on ARM",
    "set_value_with_tensor": "in-place slice assignment; not a Lite kernel on ARM",
}

FIXES = {
    "flatten_contiguous_range": "ppnets uses ppnets.models.base.flatten_tokens "
                                "(paddle.reshape(x, [0, -1])); replace the flatten call",
    "relu6": "ppnets uses create_act('relu6'), exported as clip(0, 6)",
    "set_value": "ppnets' PConv exports in split-conv-concat form; avoid slice assignment",
    "set_value_with_tensor": "as set_value: split + concat instead of slice assignment",
    "gather": "attention biases must be constant tensors at export (reparameterize() or "
              "deploy=True precomputes them); a gather of the bias table remains otherwise",
}


def program_ops(model_file: str) -> Dict[str, int]:
    """Operator type -> count over all blocks of a legacy ``.pdmodel``."""
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    with open(model_file, "rb") as f:
        desc.ParseFromString(f.read())
    counts = collections.Counter(op.type for block in desc.blocks for op in block.ops)
    return dict(sorted(counts.items()))


def op_sources(model, input_size: Sequence[int], op_types: Sequence[str],
               batch_size: int = 1, limit: int = 5) -> Dict[str, List[str]]:
    """op type -> up to ``limit`` distinct ``"path:line in func: code"`` model-code locations.

    The model (deploy form, eval mode) is copied and traced into the old IR; each op's
    ``op_callstack`` is searched for the innermost frame of model code: outside Paddle, the
    standard library and ppnets/deploy (the export shims).
    """
    import sysconfig

    import paddle


    wanted = set(op_types)
    if not wanted:
        return {}
    clone = copy.deepcopy(model)  # must happen in dynamic mode
    spec = paddle.static.InputSpec([batch_size, *input_size], dtype="float32", name="x")
    found: Dict[str, List[str]] = {t: [] for t in wanted}
    skip = (os.path.dirname(os.path.abspath(paddle.__file__)), os.path.dirname(
        os.path.abspath(__file__)), sysconfig.get_paths()["stdlib"], "<")
    ppnets_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with paddle.pir_utils.OldIrGuard(), old_ir_ops():
            fn = paddle.jit.to_static(clone.forward, input_spec=[spec], full_graph=True)
            program = fn.concrete_program.main_program
            for block in program.blocks:
                for op in block.ops:
                    if op.type not in wanted or not op.has_attr("op_callstack"):
                        continue
                    stack = list(op.attr("op_callstack"))
                    where = None
                    for i, entry in enumerate(stack):
                        m = re.match(r'\s*File "([^"]+)", line (\d+), in (\S+)', entry)
                        if m and not m.group(1).startswith(skip):
                            code = stack[i + 1].strip() if i + 1 < len(stack) else ""
                            path = m.group(1)
                            if path.startswith(ppnets_root):
                                path = os.path.relpath(path, ppnets_root)
                            where = f"{path}:{m.group(2)} in {m.group(3)}: {code}"
                    if where and where not in found[op.type] and \
                            len(found[op.type]) < limit:
                        found[op.type].append(where)
    finally:
        if not paddle.in_dynamic_mode():
            paddle.disable_static()
    return found


def check_program(model_file: str, target: str = "arm", python: Optional[str] = None,
                  model=None, input_size: Optional[Sequence[int]] = None,
                  supported: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Op-compatibility report of a legacy program on a Paddle Lite target (JSON-ready).

    ``supported`` (the target's op list) is asked from Paddle Lite unless given (pass it when
    checking many models). ``model``/``input_size`` enable :func:`op_sources` for the ops that
    need a fix. Paddle Lite's own model check runs when a Lite Python is available.
    """

    ops = program_ops(model_file)
    lite_version = None
    if supported is None:
        listing = lite.supported_ops(target, python)
        supported, lite_version = listing["ops"], listing["paddlelite"]
    supported_set = set(supported)
    unsupported = sorted(op for op in ops if op not in supported_set and op not in IGNORED_OPS)
    known_bad = sorted(op for op in ops if op in KNOWN_BAD)
    report: Dict[str, Any] = {
        "model_file": model_file, "target": target, "paddlelite": lite_version,
        "ops": ops, "unsupported": unsupported, "known_bad": known_bad,
        "fixes": {op: FIXES.get(op, "no known fix: keep this op out of the deploy form")
                  for op in unsupported + known_bad},
        "problems": {op: KNOWN_BAD.get(op, f"no {target} or host kernel in Paddle Lite")
                     for op in unsupported + known_bad},
    }
    params_file = os.path.splitext(model_file)[0] + ".pdiparams"
    if os.path.isfile(params_file):
        verdict = lite.model_ops(model_file, params_file, target, python)
        report["lite_model_check"] = {
            "supported": "supports this model" in verdict["text"],
            "returncode": verdict["returncode"],
            "text": verdict["text"][-3000:]}
        report["paddlelite"] = report["paddlelite"] or verdict["paddlelite"]
    needing = unsupported + known_bad
    if needing and model is not None and input_size is not None:
        report["sources"] = op_sources(model, input_size, needing)
    report["compatible"] = not needing and report.get("lite_model_check", {}).get(
        "supported", True)
    return report
