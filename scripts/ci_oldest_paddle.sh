#!/usr/bin/env bash
# CI: ppnets on the oldest supported Paddle (MIN_PADDLE in ppnets/paddle_check.py), as a user who
# has that Paddle installs it: Paddle first, then `pip install -e ".[dev]"`, which must leave that
# Paddle as it is. Then a smoke subset: models (every registry-wide test of a few families),
# parity of a few variants with their timm reference, a training run with resume, the data
# loader's fail-fast errors (it extends Paddle's private loader iterators), export to Paddle
# Inference and ONNX, and the install checks.
#
#   VENV=/path/to/main/venv scripts/ci_oldest_paddle.sh
#
# VENV: the main CI venv; its python runs the torch side of the parity tests (PPNETS_TORCH_PYTHON),
# so torch is not installed twice.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:?set VENV to the main venv (torch, torchvision, timm for the parity references)}"
OLDEST="$(sed -n 's/^MIN_PADDLE = "\(.*\)"$/\1/p' ppnets/paddle_check.py)"
[ -n "$OLDEST" ] || { echo "ci_oldest_paddle: MIN_PADDLE not found in ppnets/paddle_check.py" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
start=$(date +%s)
"$PY" -m pip install -q "paddlepaddle==$OLDEST"
"$PY" -m pip install -q -e ".[dev]"
echo "ci_oldest_paddle: installed paddlepaddle $OLDEST + ppnets in $(( $(date +%s) - start )) s"
# The install kept the user's Paddle: no other build was pulled in beside or over it.
"$PY" - "$OLDEST" <<'PYEOF'
import importlib.metadata as md
import sys
import paddle
assert paddle.__version__ == sys.argv[1], f"ppnets' install replaced Paddle {sys.argv[1]} with {paddle.__version__}"
builds = sorted(d.metadata["Name"] for d in md.distributions()
                if d.metadata["Name"].lower().startswith("paddlepaddle"))
assert builds == ["paddlepaddle"], builds
print(f"ci_oldest_paddle: Paddle {paddle.__version__} kept ({builds})")
PYEOF

FAMILIES="fasternet_t0 or mobilenetv2_050 or mobilenetv3_small_050 or repvgg_a0 or mobileone_s0 or repvit_m0_9 or efficientformerv2_s0 or shufflenet_v2_x0_5 or spconv_resnet20_cifar_a2 or poolformer_s12"
export PPNETS_TORCH_PYTHON="$VENV/bin/python"
"$PY" -m pytest -q -n 2 --dist loadgroup -rs \
    tests/models/test_models.py tests/models/test_features.py tests/parity/test_parity.py \
    -k "$FAMILIES"
"$PY" -m pytest -q -n 2 --dist loadgroup -rs \
    tests/engine/test_engine.py tests/engine/test_bad_images.py tests/cli/test_cli.py \
    tests/deploy/test_deploy_export.py tests/install/test_install.py \
    -k "not test_install_keeps_a_gpu_paddle"
echo "ci_oldest_paddle: done in $(( $(date +%s) - start )) s"
