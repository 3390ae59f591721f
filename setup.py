"""ppnets: PaddlePaddle reproductions of efficient vision backbones."""
import re

from setuptools import find_packages, setup

RUNTIME = [
    "paddlepaddle==3.3.1",
    # paddle.flops breaks on numpy 2.x and paddleslim pins an opencv built for numpy 1.
    "numpy==1.26.4",
    "visualdl==2.5.3",
    "pyyaml>=6.0",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    # pretrained=True: hub downloads honour HF_ENDPOINT / HF_HUB_OFFLINE
    "huggingface_hub>=0.20",
    "safetensors>=0.4",
    # INT8 for Paddle Lite (ppnets.deploy.quant: PTQ and QAT) is part of the core workflow.
    # paddleslim 2.6 imports pkg_resources, which setuptools 81 removed: the cap holds whatever
    # is installed after (the parity extra's torch accepts any setuptools).
    "paddleslim==2.6.0",
    "decorator",
    "setuptools<81",
]

EXTRAS = {
    # paddle2onnx pip-installs onnx-graphsurgeon at run time when it is missing, and its newest
    # ml-dtypes drags numpy to 2.x; installing both here with numpy 1 kept avoids that.
    "onnx": ["paddle2onnx==2.1.0", "onnxruntime>=1.17", "onnx-graphsurgeon", "ml-dtypes<0.6"],
    # Reference implementations for parity checks; they only ever run in a subprocess.
    "parity": ["torch==2.14.1", "torchvision==0.29.1", "timm==1.0.31"],
}
# pytest<9: pytest-xdist 3.8 groups tests (--dist loadgroup) by rewriting item._nodeid, which
# pytest 9 no longer reads, so under pytest 9 the groups silently do nothing.
# nbclient/nbformat/ipykernel execute the notebooks (scripts/run_notebooks.py, tests/notebooks).
EXTRAS["dev"] = ["pytest>=8,<9", "pytest-xdist>=3.5", "onnx", "nbclient>=0.10", "nbformat>=5.10",
                 "ipykernel>=6.29"] + EXTRAS["onnx"]

setup(
    name="ppnets",
    version=re.search(r'__version__ = "([^"]+)"', open("ppnets/version.py").read()).group(1),
    description="PaddlePaddle reproductions of efficient vision backbones and their latency studies",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ppnets", "ppnets.*"]),
    python_requires=">=3.9",
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["ppnets=ppnets.cli.main:main"]},
)
