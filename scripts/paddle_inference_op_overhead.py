"""Stand-alone reproduction for Paddle maintainers: the per-operator cost of Paddle Inference's
oneDNN kernels on CPU, next to ONNX Runtime and to the oneDNN primitive itself.

Needs only paddlepaddle, paddle2onnx, onnxruntime and numpy (no ppnets):

    python scripts/paddle_inference_op_overhead.py [--block conv] [--channels 64] [--size 28]

A network of N identical blocks (N = 8 and 32) is saved with paddle.jit.save and exported to
ONNX; both runtimes time it (``--threads`` 1, batch 1, median of ``--repeats`` 200 runs after
``--warmup`` 50 runs). The slope between the two depths is the time one more block costs. The oneDNN primitive
time of one block (the sum of every primitive executed, read from ONEDNN_VERBOSE in a child
process) shows how much of Paddle Inference's cost is the computation itself. Blocks:

* ``conv``: 1x1 convolution + ReLU (most of a mobile network's ops);
* ``shuffle``: ShuffleNetV2's data movement: split into halves, concat(x1, relu(x2)), channel
  shuffle (reshape-transpose-reshape, which Paddle fuses to ``shuffle_channel``);
* ``pool``: PoolFormer's token mixer, 3x3 average pooling (padding excluded) minus the input;
* ``softmax``: attention's softmax over the last axis (``--channels 16 --size 196`` is
  MobileViT-XXS's first attention map: 4 patch positions x 4 heads, 196 x 196 tokens);
* ``silu``: SiLU written as x * sigmoid(x) (two oneDNN ops; ONNX Runtime fuses them).

On the development machine of ppnets (2-core AMD EPYC, Paddle 3.3.1) a Paddle Inference block
costs several times the oneDNN primitives it runs: the difference is per-op framework work
(primitive-cache key, memory descriptors, layout bookkeeping), which for the small tensors of
mobile networks at batch 1 is as long as the computation.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def build(n, channels, block):
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Shuffle(nn.Layer):
        def forward(self, x):
            x1, x2 = paddle.split(x, 2, axis=1)
            x = paddle.concat([x1, F.relu(x2)], axis=1)
            b, c, h, w = x.shape
            return x.reshape([b, 2, c // 2, h, w]).transpose([0, 2, 1, 3, 4]).reshape([b, c, h, w])

    class PoolMixer(nn.Layer):
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2D(3, stride=1, padding=1, exclusive=True)

        def forward(self, x):
            return self.pool(x) - x

    class Softmax(nn.Layer):
        def forward(self, x):
            return F.softmax(x, axis=-1)

    class SiLU(nn.Layer):
        def forward(self, x):
            return x * F.sigmoid(x)

    def one():
        if block == "conv":
            return nn.Sequential(nn.Conv2D(channels, channels, 1), nn.ReLU())
        return {"shuffle": Shuffle, "pool": PoolMixer, "softmax": Softmax, "silu": SiLU}[block]()

    return nn.Sequential(*[one() for _ in range(n)])


def median_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return 1e3 * float(np.median(samples))


def measure(n, channels, size, threads, block, folder, warmup=50, repeats=200,
            verbose=False):
    import onnxruntime as ort
    import paddle
    from paddle import inference

    paddle.seed(0)
    net = build(n, channels, block)
    net.eval()
    spec = paddle.static.InputSpec([1, channels, size, size], "float32", "x")
    prefix = os.path.join(folder, f"chain{n}")
    paddle.jit.save(net, prefix, input_spec=[spec])
    model_file = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
    config = inference.Config(model_file, prefix + ".pdiparams")
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.enable_mkldnn()
    config.switch_ir_optim(True)
    config.disable_glog_info()
    try:
        predictor = inference.create_predictor(config)
    except RuntimeError:
        if os.path.exists(prefix + ".pdiparams"):
            raise
        # the chains have no parameters, hence no parameters file, which Paddle 3.0's predictor
        # insists on (Paddle 3.3 loads them)
        sys.exit(f"error: Paddle {paddle.__version__} cannot load a program without parameters "
                 f"(the {block} chain). Run this script with a newer Paddle (3.3.1 loads it).")
    x = np.random.default_rng(0).standard_normal((1, channels, size, size)).astype(np.float32)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    out = predictor.get_output_handle(predictor.get_output_names()[0])
    if verbose:  # child process: one run under ONEDNN_VERBOSE, after warm-up
        for _ in range(5):
            predictor.run()
        print("=== MEASURED RUN", flush=True)
        predictor.run()
        return None
    paddle_ms = median_ms(lambda: (predictor.run(), out.copy_to_cpu()), warmup, repeats)
    paddle.onnx.export(net, prefix, input_spec=[spec], opset_version=13)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(prefix + ".onnx", opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    ort_ms = median_ms(lambda: sess.run(None, feed), warmup, repeats)
    return paddle_ms, ort_ms


def primitive_ms(n, args):
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--block", args.block,
                           "--channels", str(args.channels), "--size", str(args.size),
                           "--threads", str(args.threads)], env=env, capture_output=True,
                          text=True)
    lines = proc.stdout.split("=== MEASURED RUN", 1)[-1].splitlines()
    execs = [line.split(",") for line in lines if ",exec," in line]
    kinds = sorted({fields[5] for fields in execs if len(fields) > 5})
    return sum(float(fields[-1]) for fields in execs) / n, len(execs), kinds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--block", choices=("conv", "shuffle", "pool", "softmax", "silu"),
                   default="conv")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=50, help="untimed runs before timing (50)")
    p.add_argument("--repeats", type=int, default=200, help="timed runs; the median is shown")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.child:
            measure(args.child, args.channels, args.size, args.threads, args.block, folder,
                    verbose=True)
            return 0
        (p8, o8), (p32, o32) = (measure(n, args.channels, args.size, args.threads, args.block,
                                        folder, args.warmup, args.repeats) for n in (8, 32))
    prim, count, kinds = primitive_ms(32, args)
    print(f"block {args.block!r}, {args.channels} channels, {args.size}x{args.size}, batch 1, "
          f"{args.threads} thread(s)")
    print(f"network of 8 / 32 blocks: Paddle Inference {p8:.3f} / {p32:.3f} ms, "
          f"ONNX Runtime {o8:.3f} / {o32:.3f} ms")
    print(f"one more block costs: Paddle Inference {1e3 * (p32 - p8) / 24:.1f} us, "
          f"ONNX Runtime {1e3 * (o32 - o8) / 24:.1f} us; its oneDNN primitives run "
          f"{1e3 * prim:.1f} us ({count} primitive executions in the 32-block run: "
          f"{', '.join(kinds)})")
    print(f"Paddle Inference per-block time beyond the primitives: "
          f"{1e3 * ((p32 - p8) / 24 - prim):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
