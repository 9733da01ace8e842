"""Writes tests/fixtures/golden.safetensors: a small net's forward, backward and SGD steps in PyTorch.

qnn's golden test runs the same net on the same batch and compares every number below.
Regenerate (deterministic, same bytes each run) from the repository root with PyTorch 1.13:
    /usr/bin/python3 scripts/make_golden.py

The net (module names as in its state_dict):
    conv1 = Conv2d(3, 8, 3, stride=1, padding=1, bias=False)   [8, 3, 8, 8] -> [8, 8, 8, 8]
    bn1   = BatchNorm2d(8)   (eps 1e-5, momentum 0.1)
    ReLU, MaxPool2d(2)                                          -> [8, 8, 4, 4]
    conv2 = Conv2d(8, 16, 3, stride=2, padding=1, bias=True)    -> [8, 16, 2, 2]
    ReLU, mean over H and W (global average pool)               -> [8, 16]
    fc    = Linear(16, 10)                                      -> [8, 10]
    loss  = F.cross_entropy(logits, labels), mean over the batch
Parameters start from PyTorch's default initialisation under torch.manual_seed(0).

Contents (all F32 unless marked I64; [] is a scalar):
    input [8, 3, 8, 8], labels [8] (I64, values 0..9)
    the initial state_dict under its own names: conv1.weight, bn1.weight, bn1.bias,
        bn1.running_mean, bn1.running_var, bn1.num_batches_tracked (I64), conv2.weight,
        conv2.bias, fc.weight, fc.bias
    forward1.logits, forward1.loss          first forward, train mode
    forward1.bn1.running_mean/running_var   running stats after that forward
    grad.<param>                            every parameter's gradient from the first backward
    step<k>.loss (k = 1, 2, 3)              loss of the train-mode forward before update k
                                            (step1.loss equals forward1.loss)
    step<k>.<param>                         every parameter after update k
    step3.bn1.running_mean/running_var/num_batches_tracked (I64, = 3)   after 3 forwards
    eval.logits                             eval-mode forward after the 3 updates
Updates are torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
dampening=0) on the same batch each step. In PyTorch 1.13 that is, per parameter p with
gradient g:  d = g + wd * p;  buf = d on the first step, else momentum * buf + d;
p -= lr * (d + momentum * buf). BatchNorm in train mode normalises with the biased batch
variance but updates running_var with the unbiased one (times n / (n - 1), n = N * H * W).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join("tests", "fixtures", "golden.safetensors")
PARAMS = ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=True)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = Net()
    x = torch.randn(8, 3, 8, 8)
    labels = torch.randint(0, 10, (8,))
    named = dict(net.named_parameters())
    assert list(named) == PARAMS, list(named)

    out = [("input", x), ("labels", labels)]
    out += [(name, t.detach().clone()) for name, t in net.state_dict().items()]

    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4, dampening=0)
    net.train()
    for step in range(1, 4):
        opt.zero_grad()
        logits = net(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        if step == 1:
            out += [("forward1.logits", logits.detach().clone()), ("forward1.loss", loss.detach().clone()),
                    ("forward1.bn1.running_mean", net.bn1.running_mean.clone()),
                    ("forward1.bn1.running_var", net.bn1.running_var.clone())]
            out += [("grad." + name, named[name].grad.clone()) for name in PARAMS]
        out.append((f"step{step}.loss", loss.detach().clone()))
        opt.step()
        out += [(f"step{step}.{name}", named[name].detach().clone()) for name in PARAMS]
    out += [("step3.bn1.running_mean", net.bn1.running_mean.clone()),
            ("step3.bn1.running_var", net.bn1.running_var.clone()),
            ("step3.bn1.num_batches_tracked", net.bn1.num_batches_tracked.clone())]
    net.eval()
    with torch.no_grad():
        out.append(("eval.logits", net(x)))

    metadata = {"generator": "scripts/make_golden.py", "torch": torch.__version__,
                "net": "conv1-bn1-relu-maxpool2-conv2(s2)-relu-avgpool-fc, input [8,3,8,8]",
                "optimizer": "SGD lr=0.1 momentum=0.9 nesterov weight_decay=5e-4, 3 steps on one batch"}
    write_safetensors(OUT, out, metadata)

    back, _ = read_safetensors(OUT)
    assert list(back) == [name for name, _ in out]
    for name, t in out:
        assert torch.equal(back[name], t), name
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes, {len(out)} tensors; "
          f"losses {[round(back[f'step{k}.loss'].item(), 6) for k in (1, 2, 3)]}")
    for name, t in out:
        print(f"  {name:32s} {str(t.dtype).replace('torch.', ''):8s} {list(t.shape)}")


if __name__ == "__main__":
    main()
