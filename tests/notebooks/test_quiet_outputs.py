"""What a notebook (and any ppnets user) sees of Paddle's and tqdm's noise: none. Each check runs
in a fresh interpreter, where Python shows a warning once per place as a user's process would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

BN_NOTE = "When training, we now always track global mean and variance"
PIR_NOTE = "Paddle static graph(PIR) not support input out tensor"


def _python(code: str, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def build_train_export(tmp_path_factory):
    """Build two models, run a train-mode step on each and export one (paddle.jit.save)."""
    out = tmp_path_factory.mktemp("quiet")
    proc = _python(f"""
        import os
        import paddle
        import ppnets
        from ppnets.runtime import export_program

        for name in ("resnet20_cifar", "mobilenetv2_050"):
            model = ppnets.create_model(name, num_classes=10)
            model.train()
            model(paddle.randn([2, 3, 32, 32])).mean().backward()
        model = ppnets.create_model("resnet20_cifar")
        model.eval()
        files = export_program(model, (3, 32, 32), 1, {str(out)!r})
        print("exported", all(os.path.isfile(f) for f in files))
        """, cwd=str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_building_and_training_a_model_prints_no_batchnorm_warning(build_train_export):
    assert BN_NOTE not in build_train_export.stderr


def test_exporting_a_model_prints_no_pir_out_notice(build_train_export):
    assert "exported True" in build_train_export.stdout
    assert PIR_NOTE not in build_train_export.stderr


def test_the_pir_filter_passes_everything_else_on(capfd):
    from ppnets.runtime.program import _without_stderr_line

    with _without_stderr_line(PIR_NOTE):
        os.write(2, f"before\nW1205 eager_utils.cc:3584] {PIR_NOTE} for now!!!!!\n"
                    "after\n".encode())
    err = capfd.readouterr().err
    assert "before\n" in err and "after\n" in err and PIR_NOTE not in err


def test_tqdm_auto_in_a_kernel_without_ipywidgets_does_not_warn(tmp_path):
    try:
        import ipywidgets  # noqa: F401
        pytest.skip("ipywidgets is installed: tqdm.auto has its widget bar, nothing to silence")
    except ImportError:
        pass
    proc = _python("""
        import sys, types, warnings
        warnings.simplefilter("always")
        import IPython  # noqa: F401
        # what tqdm.autonotebook looks for to decide that it runs in a Jupyter kernel
        sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
        from ppnets import notebook  # noqa: F401  (what every notebook imports first)
        import tqdm.auto  # noqa: F401  (what huggingface_hub imports for its download bars)
        """, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "IProgress not found" not in proc.stderr and "TqdmWarning" not in proc.stderr


def test_training_with_the_engine_and_importing_paddleslim_print_no_warning(tmp_path):
    """A training step of the engine's paddle.Model (paddle's own train_batch passed the label
    tensors through to_tensor, which warned), and paddleslim's import-time notes about
    pkg_resources and distutils: silenced, each by its exact message."""
    proc = _python("""
        import paddle
        from ppnets.deploy.quant import _import_paddleslim
        from ppnets.engine import EngineModel, TrainParts

        net = paddle.nn.Linear(4, 2)
        parts = TrainParts(net, paddle.nn.CrossEntropyLoss(),
                           paddle.optimizer.SGD(parameters=net.parameters()))
        EngineModel(parts).train_batch([paddle.randn([2, 4])], [paddle.to_tensor([[0], [1]])])
        _import_paddleslim()
        print("trained")
        """, cwd=str(tmp_path))
    assert proc.returncode == 0 and "trained" in proc.stdout, proc.stderr[-3000:]
    for note in ("To copy construct from a tensor", "pkg_resources is deprecated",
                 "Setuptools is replacing distutils"):
        assert note not in proc.stderr, proc.stderr
