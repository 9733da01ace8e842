# The PyTorch peer of bench/int8_infer.cpp: ResNet-20 inference images/s on the CPU, fp32 and int8
# in one process. int8 is PyTorch's own post-training quantization in FX graph mode (prepare_fx,
# calibration on random images, convert_fx) with the onednn engine's default qconfig (Debian's
# PyTorch 1.13 has no fbgemm): per-channel s8 weights, u8 activations, convolutions fused with
# batch norm and ReLU, the residual add_relu quantized. --torchscript also times the int8 model
# traced and frozen. Images/s are the best of --rounds rounds of --seconds each, after warm-up.
#   OMP_NUM_THREADS=2 /usr/bin/python3 bench/int8_infer_torch.py [--batch-sizes 1,128] [--threads 2]
import argparse, copy, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts'))
from cifar_resnet_torch import ResNet  # noqa: E402


def images_per_second(model, x, seconds, rounds):
    with torch.no_grad():
        for _ in range(3): model(x)
        best = 0.0
        for _ in range(rounds):
            n, t = 0, time.perf_counter()
            while time.perf_counter() - t < seconds:
                model(x); n += 1
            best = max(best, n * x.shape[0] / (time.perf_counter() - t))
    return best


p = argparse.ArgumentParser()
p.add_argument('--depth', type=int, default=20)
p.add_argument('--batch-sizes', default='1,128')
p.add_argument('--threads', type=int, default=2)
p.add_argument('--seconds', type=float, default=2.0)
p.add_argument('--rounds', type=int, default=3)
p.add_argument('--torchscript', action='store_true', help='also time the int8 model traced and frozen')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.backends.quantized.engine = 'onednn'
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx

torch.manual_seed(0)
fp32 = ResNet(a.depth).eval()
example = torch.randn(8, 3, 32, 32)
prepared = prepare_fx(copy.deepcopy(fp32), get_default_qconfig_mapping('onednn'), example_inputs=(example,))
with torch.no_grad():
    for _ in range(8): prepared(torch.randn(32, 3, 32, 32))
int8 = convert_fx(prepared)
fp32_channels_last = copy.deepcopy(fp32).to(memory_format=torch.channels_last)  # .to converts in place: a copy
for b in [int(v) for v in a.batch_sizes.split(',')]:
    x = torch.randn(b, 3, 32, 32)
    peers = [('torch fp32', fp32), ('torch fp32 channels-last', fp32_channels_last),
             ('torch int8 fx', int8)]
    if a.torchscript:
        with torch.no_grad():
            peers.append(('torch int8 torchscript', torch.jit.freeze(torch.jit.trace(int8, x).eval())))
    for name, model in peers:
        xi = x.to(memory_format=torch.channels_last) if 'channels-last' in name else x
        print(f'{name} batch {b}: {images_per_second(model, xi, a.seconds, a.rounds):.0f} images/s '
              f'({a.threads} threads, torch {torch.__version__}, engine {torch.backends.quantized.engine})', flush=True)
