"""Generates the reference outputs once per session, in a torch subprocess.

The torch side needs torch, torchvision and timm (``pip install -e ".[parity]"``); set
``PPNETS_TORCH_PYTHON`` to use another interpreter that has them. Outputs are cached under
pytest's cache directory keyed by the spec, the reference library versions and the script's hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "torch_reference.py")
# the references whose features_only maps torch_reference.py also writes (its FEATURE_LIBS)
FEATURE_LIBS = ("timm", "timm_repvgg_groups")
TORCH_PYTHON = os.environ.get("PPNETS_TORCH_PYTHON", sys.executable)


def _reference_versions():
    code = ("import json, torch, torchvision, timm; "
            "print(json.dumps([torch.__version__, torchvision.__version__, timm.__version__]))")
    proc = subprocess.run([TORCH_PYTHON, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1:] or ["unknown error"]
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def parity_spec(name: str) -> dict:
    import ppnets
    info = ppnets.model_info(name)
    ref = dict(info["reference"])
    input_size = ref.get("input_size") or info.get("test_input_size") or info["input_size"]
    return {"key": name, "lib": ref["lib"], "name": ref["name"], "input_size": list(input_size),
            "batch": int(ref.get("batch", 2)), "seed": 0, "kwargs": ref.get("kwargs", {}),
            "count_input_size": list(info["input_size"])}


def _cached(cache: str, spec: dict) -> bool:
    """Whether every file torch_reference.py writes for ``spec`` is in ``cache``."""
    def have(ext):
        return os.path.exists(os.path.join(cache, spec["key"] + ext))
    features = (spec["lib"] not in FEATURE_LIBS or have(".features.json")
                or have(".features.error"))
    return have(".npz") and have(".counts.json") and features


@pytest.fixture(scope="session")
def reference_dir(request):
    """Directory holding ``<key>.safetensors/.npz/.counts.json/.error`` (and, for timm
    references, ``<key>.features.npz/.features.json`` or ``.features.error``) for every model a
    selected test of tests/parity needs, and the ``{name: key}`` map."""
    versions, err = _reference_versions()
    if versions is None:
        pytest.skip("parity needs torch, torchvision and timm in "
                    f"{TORCH_PYTHON} (pip install -e '.[parity]'): {err[0]}")
    with open(SCRIPT, "rb") as f:
        script_hash = hashlib.sha1(f.read()).hexdigest()[:12]
    names = sorted({item.callspec.params["name"] for item in request.session.items
                    if hasattr(item, "callspec") and "name" in item.callspec.params
                    and item.module.__name__.startswith("tests.parity.")})
    cache = str(request.config.cache.mkdir("ppnets_parity"))
    todo, keyed = [], {}
    for name in names:
        spec = parity_spec(name)
        digest = hashlib.sha1(json.dumps([spec, versions, script_hash],
                                         sort_keys=True).encode()).hexdigest()[:16]
        spec["key"] = f"{name}-{digest}"
        keyed[name] = spec["key"]
        if not _cached(cache, spec):
            todo.append(spec)
    if todo:
        specs_file = os.path.join(cache, f"specs-{os.getpid()}.json")
        with open(specs_file, "w") as f:
            json.dump(todo, f)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([TORCH_PYTHON, SCRIPT, "--specs", specs_file, "--out", cache],
                       check=True, env=env)
    return cache, keyed
