"""ppnets: PaddlePaddle reproductions of efficient vision backbones."""
import re

from setuptools import find_packages, setup

# Which PaddlePaddle build runs ppnets is the user's choice, as in PaddleClas, PaddleOCR and
# PaddleDetection: `paddlepaddle` (CPU), `paddlepaddle-gpu` (CUDA), a nightly or a source build
# all provide the `paddle` module, so none of them is named here (pip would put the CPU wheel
# over a GPU one: both write paddle/). `import ppnets` checks the version (ppnets/paddle_check.py:
# >= 3.0.0) and says what to install; the `cpu` extra brings the CPU build.
PADDLE = "paddlepaddle>=3.0.0"

RUNTIME = [
    # Capped below 2: paddle.flops breaks on numpy 2.4, and paddleslim 2.6 pins
    # opencv-python==4.6.0.66, which is built for numpy 1 and fails to import on numpy 2.
    "numpy>=1.21,<2",
    "visualdl>=2.5",
    "pyyaml>=6.0",
    "matplotlib>=3.7",
    "Pillow>=9.1",
    "tqdm>=4.60",
    # pretrained=True: hub downloads honour HF_ENDPOINT / HF_HUB_OFFLINE (huggingface_hub.errors
    # is new in 0.22)
    "huggingface_hub>=0.22",
    "safetensors>=0.4",
    # one download per weight file when many processes (ranks) share a cold cache
    "filelock>=3.12",
    # INT8 for Paddle Lite (ppnets.deploy.quant: PTQ and QAT) is part of the core workflow.
    "paddleslim>=2.6",
    "decorator",
    # paddleslim 2.6 imports pkg_resources, which setuptools 81 removed.
    "setuptools<81",
]

EXTRAS = {
    "cpu": [PADDLE],
    # paddle2onnx switches on Polygraphy's automatic installs, which pip-install what its
    # constant folding lacks (onnx, onnx-graphsurgeon>=0.3.27, onnxruntime, sympy) into the
    # user's environment: all declared here, so nothing is installed at run time
    # (tests/deploy/test_onnx_runtime_installs.py). The newest ml-dtypes drags numpy to 2.x;
    # capping it keeps numpy 1.
    "onnx": ["paddle2onnx>=2.1", "onnx>=1.14", "onnxruntime>=1.17", "onnx-graphsurgeon>=0.3.27",
             "sympy", "ml-dtypes<0.6"],
    # ppnets.runtime's openvino sessions: fp32/bf16/INT8 on the ONNX export or the legacy
    # Paddle program; 2024.0.0 and 2026.4.1 measured (tests/runtime/test_sessions.py).
    "openvino": ["openvino>=2024.0"],
    # Reference implementations for parity checks; they only ever run in a subprocess.
    "parity": ["torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31"],
}
# pytest<9: pytest-xdist 3.8 groups tests (--dist loadgroup) by rewriting item._nodeid, which
# pytest 9 no longer reads, so under pytest 9 the groups silently do nothing.
# nbclient/nbformat/ipykernel execute the notebooks (scripts/run_notebooks.py, tests/notebooks);
# build makes the wheel CI installs outside the checkout; import-linter checks the layer contract
# (.importlinter).
EXTRAS["dev"] = ["pytest>=8,<9", "pytest-xdist>=3.5", "nbclient>=0.10", "nbformat>=5.10",
                 "ipykernel>=6.29", "build>=1.0", "import-linter>=2.0"] + EXTRAS["onnx"] \
    + EXTRAS["openvino"]

setup(
    name="ppnets",
    version=re.search(r'__version__ = "([^"]+)"', open("ppnets/version.py").read()).group(1),
    description="PaddlePaddle reproductions of efficient vision backbones and their latency studies",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ppnets", "ppnets.*"]),
    # the training recipes ship with the package: `ppnets train -c fasternet/cifar10` works from
    # a wheel install, without the checkout
    package_data={"ppnets": ["configs/*.yaml", "configs/*/*.yaml"]},
    python_requires=">=3.9",
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["ppnets=ppnets.cli.main:main"]},
)
