"""Our parameter and MAC counts equal the reference implementation's, counted at test time.

The torch subprocess of the parity tests (``torch_reference.py``) counts every reference model at
its ``model_info`` input size, in the train form and after timm's ``reparameterize_model``; our
``ppnets.analysis.profile_model`` must give the same numbers, so a published figure that differs
from ours (``tests/models/test_models.py``) is explained by the reference rather than by our own count.
Where model_info records such a reference count (``measured``), it must be the count measured
here.
"""
from __future__ import annotations

import json
import os

import pytest

import ppnets
from ppnets.analysis import profile_model
from tests.conftest import model_param

pytestmark = pytest.mark.xdist_group("parity")

COUNT_MODELS = [model_param(n, xdist_group=False) for n in ppnets.list_models()
                if ppnets.model_info(n).get("reference")]


def _published_deploy(info) -> bool:
    return info.get("params_m_deploy") is not None or info.get("macs_g_deploy") is not None


def _check_recorded(name, recorded, counts):
    """model_info's ``measured`` (rounded to its printed digits) is this reference count."""
    if not recorded:
        return
    for key, value in (("params_m", counts["params"] / 1e6), ("macs_g", counts["macs"] / 1e9)):
        if recorded.get(key) is not None:
            assert abs(recorded[key] - value) <= 1e-3 * value, (
                f"{name}: model_info measured {key}={recorded[key]} but the reference counts "
                f"{value:.6g} ({recorded.get('by', '')})")


@pytest.mark.parametrize("name", COUNT_MODELS)
def test_counts_equal_reference(name, reference_dir):
    cache, keyed = reference_dir
    path = os.path.join(cache, keyed[name] + ".counts.json")
    if not os.path.exists(path):
        pytest.fail(f"no reference counts for {name}: "
                    f"{open(os.path.join(cache, keyed[name] + '.error')).read()}")
    with open(path) as f:
        ref = json.load(f)
    info = ppnets.model_info(name)
    assert ref["input_size"] == list(info["input_size"])
    model = ppnets.create_model(name)
    model.eval()
    prof = profile_model(model, input_size=tuple(info["input_size"]))
    assert (prof.params, prof.macs) == (ref["params"], ref["macs"]), (
        f"{name} at {info['input_size']}: ours {prof.params} params / {prof.macs} MACs, "
        f"reference {ref['params']} / {ref['macs']}")
    _check_recorded(name, info.get("measured"), ref)
    if _published_deploy(info):
        model.reparameterize()
        prof = profile_model(model, input_size=tuple(info["input_size"]))
        dep = ref["deploy"]
        assert (prof.params, prof.macs) == (dep["params"], dep["macs"]), (
            f"{name} deploy form: ours {prof.params} params / {prof.macs} MACs, reference "
            f"{dep['params']} / {dep['macs']}")
        _check_recorded(name, (info.get("measured") or {}).get("deploy"), dep)
