# The PyTorch peer of bench/train_step.cpp: the same CIFAR ResNet (option-A shortcuts), the same
# synthetic batch and SGD step, timed after warm-up. Run with Debian's python3-torch:
#   /usr/bin/python3 bench/train_step_torch.py [--batch-size 128] [--steps 20] [--channels-last]
import argparse, time
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

p = argparse.ArgumentParser()
p.add_argument('--depth', type=int, default=20)
p.add_argument('--batch-size', type=int, default=128)
p.add_argument('--steps', type=int, default=20)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--channels-last', action='store_true')
a = p.parse_args()
torch.manual_seed(0)
model = ResNet(a.depth)
x = torch.randn(a.batch_size, 3, 32, 32)
y = torch.arange(a.batch_size) % 10
if a.channels_last:
    model = model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss.item()
for _ in range(a.warmup): step()
t = time.perf_counter()
for _ in range(a.steps): last = step()
s = time.perf_counter() - t
layout = 'channels-last' if a.channels_last else 'NCHW'
print(f"torch {torch.__version__} resnet{a.depth} {layout} batch {a.batch_size} threads {torch.get_num_threads()}: "
      f"{a.batch_size * a.steps / s:.1f} images/s ({1000 * s / a.steps:.1f} ms/step, last loss {last:.4f})")
