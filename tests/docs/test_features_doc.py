"""docs/features.md: its table of feature maps is the registry's, and its PaddleDetection and
PaddleSeg registration snippets run -- with stand-ins for the two projects' registries (neither
is installed here), as the projects' own builders would call them -- and report the shapes of
the maps they return."""
from __future__ import annotations

import inspect
import os
import re
import sys
import types

import numpy as np
import paddle
import pytest
import yaml

from ppnets.tools import feature_table
from tests.conftest import REPO

DOC = os.path.join(REPO, "docs", "features.md")


def _section(title: str) -> str:
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"### {title}\n")
    ends = [i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i >= 0]
    return text[start:min(ends, default=len(text))]


def _blocks(section: str, lang: str):
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def test_feature_table_is_current():
    with open(feature_table.table_path(), encoding="utf-8") as f:
        text = f.read()
    assert feature_table.splice(text, feature_table.render()) == text, (
        "docs/features.md's table of feature maps is out of date: run "
        "`python scripts/feature_table.py --write`")


def _module(monkeypatch, name: str, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _run_snippet(code: str) -> dict:
    namespace: dict = {"__name__": "ppnets_backbone"}
    exec(compile(code, DOC, "exec"), namespace)  # noqa: S102 - the documented code itself
    return namespace


def _x(size=64):
    return paddle.to_tensor(np.random.RandomState(0).standard_normal(
        [1, 3, size, size]).astype("float32"))


def test_paddledetection_registration(monkeypatch):
    registered = {}

    def register(cls):  # ppdet.core.workspace.register: the class under its name
        registered[cls.__name__] = cls
        return cls

    workspace = _module(monkeypatch, "ppdet.core.workspace", register=register,
                        serializable=lambda cls: cls)
    _module(monkeypatch, "ppdet.core", workspace=workspace)
    _module(monkeypatch, "ppdet")
    section = _section("PaddleDetection")
    (code,), (config,) = _blocks(section, "python"), _blocks(section, "yaml")
    _run_snippet(code)
    cls = registered["PPNetsBackbone"]
    options = yaml.safe_load(config)["PPNetsBackbone"]
    assert set(options) <= set(inspect.signature(cls).parameters)
    # ppdet's create() passes the config's options as keywords; no weights download here
    backbone = cls(**dict(options, pretrained=False))
    backbone.eval()
    with paddle.no_grad():
        maps = backbone({"image": _x()})
    assert [s.stride for s in backbone.out_shape] == [8, 16, 32]
    assert [list(m.shape) for m in maps] == [[1, s.channels, 64 // s.stride, 64 // s.stride]
                                            for s in backbone.out_shape]


def test_paddleseg_registration(monkeypatch):
    components = {}

    class ComponentManager:  # paddleseg.cvlibs.manager.BACKBONES: a class or a function
        def add_component(self, component):
            components[component.__name__] = component
            return component

    manager = _module(monkeypatch, "paddleseg.cvlibs.manager", BACKBONES=ComponentManager())
    _module(monkeypatch, "paddleseg.cvlibs", manager=manager)
    _module(monkeypatch, "paddleseg")
    section = _section("PaddleSeg")
    (code,), (config,) = _blocks(section, "python"), _blocks(section, "yaml")
    _run_snippet(code)
    model_cfg = yaml.safe_load(config)["model"]
    options = dict(model_cfg["backbone"])
    build = components[options.pop("type")]
    assert set(options) <= set(inspect.signature(build).parameters)
    backbone = build(**dict(options, pretrained=False))  # as PaddleSeg's builder calls it
    backbone.eval()
    with paddle.no_grad():
        maps = backbone(_x())
    assert backbone.feat_channels == [m.shape[1] for m in maps]
    indices = model_cfg["backbone_indices"]
    # PP-LiteSeg's own checks on the backbone, and the strides the config says it takes
    assert len(backbone.feat_channels) > max(indices)
    assert [64 // maps[i].shape[2] for i in indices] == [8, 16, 32]
    with pytest.raises(KeyError):
        components["STDC1"]  # only what the snippet added
