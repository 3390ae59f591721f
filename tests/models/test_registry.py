"""The registry: names, patterns, errors, model_info."""
import pytest

import ppnets
from ppnets.registry import register_models


def test_list_models_patterns():
    names = ppnets.list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    assert len(names) > 0
    first = names[0]
    assert ppnets.list_models(first) == [first]
    assert set(ppnets.list_models([first, "definitely_not_a_model*"])) == {first}


def test_unknown_model_suggests_close_matches():
    name = ppnets.list_models()[0]
    with pytest.raises(KeyError) as exc:
        ppnets.create_model(name + "x")
    assert name in str(exc.value) and "list_models" in str(exc.value)


@pytest.mark.parametrize("name", ppnets.list_models())
def test_model_info_fields(name):
    info = ppnets.model_info(name)
    for key in ("name", "family", "paper", "params_m", "macs_g", "input_size", "source"):
        assert key in info, f"{name}: model_info lacks {key!r}"
    assert info["paper"], f"{name}: no paper"
    assert len(info["input_size"]) == 3
    assert isinstance(info["source"], dict) and info["source"], f"{name}: source must say where " \
        "each published number comes from"
    if info["params_m"] is not None:
        assert info["params_m"] > 0


def test_register_rejects_typos_and_duplicates():
    class Dummy:  # never built
        pass
    with pytest.raises(ValueError, match="unknown info keys"):
        register_models("t_reg", Dummy, {"t_reg_a": dict(cfg={}, info=dict(param_m=1.0))},
                        paper="p", arxiv=None)
    name = ppnets.list_models()[0]
    with pytest.raises(ValueError, match="registered twice"):
        register_models("t_reg", Dummy, {name: dict(cfg={}, info={})}, paper="p", arxiv=None)
