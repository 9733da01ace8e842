# The PyTorch peer of bench/int8_infer.cpp: ResNet-20 inference images/s on the CPU, fp32 and int8
# in one process. int8 is PyTorch's own post-training quantization in FX graph mode (prepare_fx,
# calibration on random images, convert_fx) with the onednn engine's default qconfig (Debian's
# PyTorch 1.13 has no fbgemm): per-channel s8 weights, u8 activations, convolutions fused with
# batch norm and ReLU, the residual add_relu quantized. --torchscript also times the int8 model
# traced and frozen. Images/s are the best of --rounds rounds of --seconds each, after warm-up.
#   OMP_NUM_THREADS=2 /usr/bin/python3 bench/int8_infer_torch.py [--batch-sizes 1,128] [--threads 2]
import argparse, copy, time
import torch, torch.nn as nn, torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (stride != 1 or cin != cout); self.extra = cout - cin

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x
        if self.pad:
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(h + s)


class ResNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for stage, width in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, width, 2 if stage > 0 and b == 0 else 1)); cin = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


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
