#!/usr/bin/env bash
# CI: ppnets as a user without the checkout gets it. The wheel is built, installed with the CPU
# Paddle (`ppnets[cpu]`) into a fresh venv, and used from another folder: the model list, the
# shipped recipes by name (one trained with smoke settings on the shared CIFAR-10 subset), an
# export, and the Python API.
#
#   VENV=/path/to/main/venv scripts/ci_wheel.sh
#
# VENV: the main CI venv (it builds the wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
VENV="${VENV:?set VENV to the main venv (it has the build tools)}"
SHARED="$(cd .. && pwd)/shared/data"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)
"$VENV/bin/python" -m build --wheel --no-isolation --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
WHEEL="$(ls "$WORK"/dist/ppnets-*.whl)"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q "${WHEEL}[cpu]"
echo "ci_wheel: built and installed $(basename "$WHEEL") in $(( $(date +%s) - start )) s"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
export PATH="$WORK/venv/bin:$PATH"
python - "$REPO" <<'PYEOF'
import os, sys
import ppnets
here = os.path.dirname(ppnets.__file__)
assert "site-packages" in here and not here.startswith(sys.argv[1]), here
model = ppnets.create_model("fasternet_t0", num_classes=5)
import paddle
print("ci_wheel: create_model ->", model(paddle.randn([1, 3, 64, 64])).shape, "from", here)
PYEOF
ppnets models 'mobilenetv2_*' > models.txt && grep -q mobilenetv2_100 models.txt
ppnets configs > configs.txt && grep -q "fasternet/cifar10" configs.txt
ppnets configs show finetune/full > full.yaml && grep -q "dataset: folder" full.yaml
if [ -f "$SHARED/cifar-10-python-partial.tar.gz" ]; then
    ppnets train -c fasternet/cifar10 --data-file "$SHARED/cifar-10-python-partial.tar.gz" \
        -o train.epochs=1 -o train.max_steps_per_epoch=2 -o train.max_eval_steps=2 \
        -o data.batch_size=8 -o data.num_workers=0 -o train.verbose=0 --output-dir run
    test -f run/results.json && test -f run/checkpoints/best.pdparams
else
    echo "ci_wheel: $SHARED/cifar-10-python-partial.tar.gz is absent: the recipe run is skipped"
fi
ppnets export --model mobilenetv2_050 --formats paddle --output-dir export
ls export
echo "ci_wheel: done in $(( $(date +%s) - start )) s"
