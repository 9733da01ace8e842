# The PyTorch side of bench/conv_layers.cpp: the same ResNet-20 convolution shapes at batch 128,
# fp32, 2 threads, timed in NCHW and in channels_last (where oneDNN is fastest on this CPU).
# Forward is F.conv2d; the two backward halves are aten.convolution_backward with one output
# mask bit each, so every pass is timed on its own, best of the repeats.
# Usage: /usr/bin/python3 bench/conv_layers_torch.py [repeats=10]
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
BATCH = 128
LAYERS = [  # name, in channels, out channels, input size, stride, count, needs dx
    ("conv1    3->16 32x32", 3, 16, 32, 1, 1, False),
    ("stage1  16->16 32x32", 16, 16, 32, 1, 6, True),
    ("down2   16->32 32->16", 16, 32, 32, 2, 1, True),
    ("stage2  32->32 16x16", 32, 32, 16, 1, 5, True),
    ("down3   32->64 16->8", 32, 64, 16, 2, 1, True),
    ("stage3  64->64 8x8", 64, 64, 8, 1, 5, True),
]


def best_ms(f):
    f()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def run(memory_format):
    print(f"PyTorch {torch.__version__}, {memory_format}")
    print(f"{'layer (batch 128)':22s} {'count':>5s} | {'fwd ms':>8s} {'GFLOP/s':>7s} | "
          f"{'bwd-x ms':>8s} {'GFLOP/s':>7s} | {'bwd-w ms':>8s} {'GFLOP/s':>7s}")
    step_ms = step_flop = 0.0
    with torch.no_grad():
        for name, c, o, hw, stride, count, needs_dx in LAYERS:
            x = torch.rand(BATCH, c, hw, hw).mul_(2).sub_(1).contiguous(memory_format=memory_format)
            w = (torch.rand(o, c, 3, 3) * 0.2 - 0.1).contiguous(memory_format=memory_format)
            ho = (hw + 2 - 3) // stride + 1
            dy = torch.rand(BATCH, o, ho, ho).contiguous(memory_format=memory_format)
            flop = 2.0 * BATCH * o * ho * ho * c * 9

            def backward(mask):
                return torch.ops.aten.convolution_backward(
                    dy, x, w, None, [stride, stride], [1, 1], [1, 1], False, [0, 0], 1, mask)

            f = best_ms(lambda: F.conv2d(x, w, None, stride, 1))
            bx = best_ms(lambda: backward([True, False, False])) if needs_dx else 0.0
            bw = best_ms(lambda: backward([False, True, False]))
            gf = [flop / t * 1e-6 if t > 0 else 0.0 for t in (f, bx, bw)]
            print(f"{name:22s} {count:5d} | {f:8.2f} {gf[0]:7.1f} | {bx:8.2f} {gf[1]:7.1f} | "
                  f"{bw:8.2f} {gf[2]:7.1f}")
            step_ms += count * (f + bx + bw)
            step_flop += count * flop * (3 if needs_dx else 2)
    print(f"training step, all convs: {step_ms:.1f} ms, {step_flop / step_ms * 1e-6:.1f} GFLOP/s, "
          f"{BATCH / step_ms * 1e3:.0f} images/s (convs alone)")


if __name__ == "__main__":
    run(torch.contiguous_format)
    run(torch.channels_last)
