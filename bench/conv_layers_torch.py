# The PyTorch side of bench/conv_layers.cpp: the same convolution shapes (CIFAR ResNet-20 at
# batch 128, or torchvision's ResNet-18/50 at 224x224 and batch 16), fp32, 2 threads, timed in
# NCHW and in channels_last (where oneDNN is fastest on this CPU). Forward is F.conv2d; the two
# backward halves are aten.convolution_backward with one output mask bit each, so every pass is
# timed on its own, best of the repeats. With --qnn FILE (the output of build/bench/conv_layers
# for the same --net) it also prints qnn's time over PyTorch's faster layout per pass and shape
# (above 1: qnn slower).
# Usage: /usr/bin/python3 bench/conv_layers_torch.py [--net resnet20|resnet18|resnet50]
#                                                    [--repeats N] [--qnn FILE]
import argparse
import re
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def layer(c, o, hw, k, stride, pad, count, needs_dx=True):
    return dict(c=c, o=o, hw=hw, k=k, stride=stride, pad=pad, count=count, needs_dx=needs_dx)


# Distinct shapes and how many layers have each; the list of bench/conv_shapes.h.
NETS = {
    "resnet20": (128, 10, [
        layer(3, 16, 32, 3, 1, 1, 1, False), layer(16, 16, 32, 3, 1, 1, 6), layer(16, 32, 32, 3, 2, 1, 1),
        layer(32, 32, 16, 3, 1, 1, 5), layer(32, 64, 16, 3, 2, 1, 1), layer(64, 64, 8, 3, 1, 1, 5)]),
    "resnet18": (16, 3, [
        layer(3, 64, 224, 7, 2, 3, 1, False), layer(64, 64, 56, 3, 1, 1, 4), layer(64, 128, 56, 3, 2, 1, 1),
        layer(64, 128, 56, 1, 2, 0, 1), layer(128, 128, 28, 3, 1, 1, 3), layer(128, 256, 28, 3, 2, 1, 1),
        layer(128, 256, 28, 1, 2, 0, 1), layer(256, 256, 14, 3, 1, 1, 3), layer(256, 512, 14, 3, 2, 1, 1),
        layer(256, 512, 14, 1, 2, 0, 1), layer(512, 512, 7, 3, 1, 1, 3)]),
    "resnet50": (16, 2, [
        layer(3, 64, 224, 7, 2, 3, 1, False),
        layer(64, 64, 56, 1, 1, 0, 1), layer(256, 64, 56, 1, 1, 0, 2), layer(64, 64, 56, 3, 1, 1, 3),
        layer(64, 256, 56, 1, 1, 0, 4),
        layer(256, 128, 56, 1, 1, 0, 1), layer(128, 128, 56, 3, 2, 1, 1), layer(256, 512, 56, 1, 2, 0, 1),
        layer(128, 512, 28, 1, 1, 0, 4), layer(512, 128, 28, 1, 1, 0, 3), layer(128, 128, 28, 3, 1, 1, 3),
        layer(512, 256, 28, 1, 1, 0, 1), layer(256, 256, 28, 3, 2, 1, 1), layer(512, 1024, 28, 1, 2, 0, 1),
        layer(256, 1024, 14, 1, 1, 0, 6), layer(1024, 256, 14, 1, 1, 0, 5), layer(256, 256, 14, 3, 1, 1, 5),
        layer(1024, 512, 14, 1, 1, 0, 1), layer(512, 512, 14, 3, 2, 1, 1), layer(1024, 2048, 14, 1, 2, 0, 1),
        layer(512, 2048, 7, 1, 1, 0, 3), layer(2048, 512, 7, 1, 1, 0, 2), layer(512, 512, 7, 3, 1, 1, 2)]),
}


def name(l):
    out = (l["hw"] + 2 * l["pad"] - l["k"]) // l["stride"] + 1
    s = f"{l['c']}->{l['o']} {l['k']}x{l['k']}"
    if l["stride"] != 1:
        s += f"/{l['stride']}"
    s += f" {l['hw']}" + (f"->{out}" if out != l["hw"] else "")
    return s


def best_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def run(net, memory_format, repeats):
    batch, _, layers = NETS[net]
    print(f"PyTorch {torch.__version__}, {memory_format}")
    print(f"{net + ' batch ' + str(batch):28s} {'count':>5s} | {'fwd ms':>8s} {'GFLOP/s':>7s} | "
          f"{'bwd-x ms':>8s} {'GFLOP/s':>7s} | {'bwd-w ms':>8s} {'GFLOP/s':>7s}")
    step_ms = step_flop = 0.0
    times = {}
    with torch.no_grad():
        for l in layers:
            c, o, hw, k, stride, pad = l["c"], l["o"], l["hw"], l["k"], l["stride"], l["pad"]
            x = torch.rand(batch, c, hw, hw).mul_(2).sub_(1).contiguous(memory_format=memory_format)
            w = (torch.rand(o, c, k, k) * 0.2 - 0.1).contiguous(memory_format=memory_format)
            ho = (hw + 2 * pad - k) // stride + 1
            dy = torch.rand(batch, o, ho, ho).contiguous(memory_format=memory_format)
            flop = 2.0 * batch * o * ho * ho * c * k * k

            def backward(mask):
                return torch.ops.aten.convolution_backward(
                    dy, x, w, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)

            f = best_ms(lambda: F.conv2d(x, w, None, stride, pad), repeats)
            bx = best_ms(lambda: backward([True, False, False]), repeats) if l["needs_dx"] else 0.0
            bw = best_ms(lambda: backward([False, True, False]), repeats)
            gf = [flop / t * 1e-6 if t > 0 else 0.0 for t in (f, bx, bw)]
            print(f"{name(l):28s} {l['count']:5d} | {f:8.2f} {gf[0]:7.1f} | {bx:8.2f} {gf[1]:7.1f} | "
                  f"{bw:8.2f} {gf[2]:7.1f}", flush=True)
            times[name(l)] = (l["count"], f, bx, bw)
            step_ms += l["count"] * (f + bx + bw)
            step_flop += l["count"] * flop * (3 if l["needs_dx"] else 2)
    print(f"training step, all convs: {step_ms:.1f} ms, {step_flop / step_ms * 1e-6:.1f} GFLOP/s, "
          f"{batch / step_ms * 1e3:.0f} images/s (convs alone)")
    return times


def read_qnn(path):
    """Per-shape (fwd, bwd-x, bwd-w) ms from build/bench/conv_layers' table."""
    rows = {}
    for line in open(path):
        m = re.match(r"(.+?)\s+(\d+) \| +([\d.]+) +[\d.]+ \| +([\d.]+) +[\d.]+ \| +([\d.]+) +[\d.]+$", line)
        if m:
            rows[m.group(1).strip()] = tuple(float(m.group(i)) for i in (3, 4, 5))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--net", default="resnet20", choices=sorted(NETS))
    parser.add_argument("--repeats", type=int, default=0)
    parser.add_argument("--qnn", help="output of build/bench/conv_layers for the same --net")
    args = parser.parse_args()
    repeats = args.repeats or NETS[args.net][1]
    qnn = read_qnn(args.qnn) if args.qnn else None
    if args.qnn and not qnn:
        sys.exit(f"conv_layers_torch.py: no table rows found in --qnn {args.qnn} "
                 "(expected the output of build/bench/conv_layers)")
    nchw = run(args.net, torch.contiguous_format, repeats)
    cl = run(args.net, torch.channels_last, repeats)
    if not qnn:
        return
    print("qnn time / PyTorch's faster layout (above 1: qnn slower)")
    print(f"{'shape':28s} {'count':>5s} | {'fwd':>6s} {'bwd-x':>6s} {'bwd-w':>6s} | {'qnn ms x count':>14s}")
    totals = [0.0, 0.0]
    for shape, (count, *t_nchw) in nchw.items():
        t_cl = cl[shape][1:]
        best = [min(a, b) for a, b in zip(t_nchw, t_cl)]
        mine = qnn.get(shape)
        if mine is None:
            print(f"{shape:28s} missing from --qnn")
            continue
        ratios = [f"{m / b:6.2f}" if b > 0 else f"{'-':>6s}" for m, b in zip(mine, best)]
        print(f"{shape:28s} {count:5d} | {' '.join(ratios)} | {count * sum(mine):14.1f}")
        totals[0] += count * sum(mine)
        totals[1] += count * sum(best)
    print(f"all convs of a step: qnn {totals[0]:.1f} ms, PyTorch (faster layout per pass) {totals[1]:.1f} ms, "
          f"ratio {totals[0] / totals[1]:.2f}")


if __name__ == "__main__":
    main()
