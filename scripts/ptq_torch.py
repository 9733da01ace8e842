"""PyTorch's own post-training quantization of a qnn float CIFAR ResNet checkpoint, the peer row
of ./apps/ptq's table (docs/ptq.md).

    /usr/bin/python3 scripts/ptq_torch.py --resume model.safetensors [--data DIR]
        [--calibration-images 512] [--limit-test 0] [--depth 20]

The checkpoint (./apps/cifar, option-A shortcuts) loads into the same ResNet written in PyTorch;
FX graph mode quantization (torch.ao.quantization.quantize_fx: prepare_fx, calibration, convert_fx,
batch norms folded into the convolutions) runs on the oneDNN engine (Debian's PyTorch has no
fbgemm), calibrated on the same images as ./apps/ptq: the first N training images with the
evaluation transform. Two configurations, both 8-bit (int8 weights, uint8 activations):
  per-channel weights + histogram activations   get_default_qconfig_mapping('onednn'):
                                                PerChannelMinMaxObserver weights,
                                                HistogramObserver (MSE-searched range) activations
  per-tensor min-max                            MinMaxObserver for both (symmetric weights)
It prints the fp32 accuracy and each configuration's, with the loss in points, as table rows.
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig_mapping
from torch.ao.quantization.observer import MinMaxObserver
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cifar_resnet_torch import ResNet  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32)


def load_split(folder, train):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(folder, n), dtype=np.uint8).reshape(-1, 3073) for n in names])
    images = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    images = (images - MEAN[None, :, None, None]) / STD[None, :, None, None]
    return torch.from_numpy(images), torch.from_numpy(raw[:, 0].astype(np.int64))


def load_qnn(model, path):
    tensors, metadata = read_safetensors(path)
    state = model.state_dict()
    for name in state:
        if name.endswith("num_batches_tracked"):
            continue
        if name not in tensors:
            sys.exit(f"{path}: tensor '{name}' is missing (a float ResNet checkpoint of ./apps/cifar, shortcut A?)")
        state[name] = tensors[name].reshape(state[name].shape)
    model.load_state_dict(state)
    return metadata


def accuracy(model, images, labels, batch=500):
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            logits = model(images[i:i + batch])
            correct += (logits.argmax(1) == labels[i:i + batch]).sum().item()
            loss += F.cross_entropy(logits, labels[i:i + batch], reduction="sum").item()
    return correct / len(images), loss / len(images)


def quantize(model, qconfig_mapping, calibration):
    example = (calibration[:1],)
    prepared = prepare_fx(model, qconfig_mapping, example)
    with torch.no_grad():
        for i in range(0, len(calibration), 128):
            prepared(calibration[i:i + 128])
    return convert_fx(prepared)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resume", required=True, help="qnn float checkpoint (safetensors)")
    p.add_argument("--data", default=os.environ.get("CIFAR10_DIR", "data/cifar-10-batches-bin"))
    p.add_argument("--calibration-images", type=int, default=512)
    p.add_argument("--limit-test", type=int, default=0)
    p.add_argument("--depth", type=int, default=20)
    a = p.parse_args()
    torch.backends.quantized.engine = "onednn"
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    train_x, _ = load_split(a.data, True)
    test_x, test_y = load_split(a.data, False)
    if a.limit_test > 0:
        test_x, test_y = test_x[:a.limit_test], test_y[:a.limit_test]
    calibration = train_x[:a.calibration_images].contiguous()
    model = ResNet(a.depth)
    load_qnn(model, a.resume)
    model.eval()
    fp32, fp32_loss = accuracy(model, test_x, test_y)
    print(f"PyTorch {torch.__version__}, engine {torch.backends.quantized.engine}; calibration: the first "
          f"{len(calibration)} training images; test: {len(test_x)} images\n")
    print("| method | W/A bits | options | accuracy | vs fp32 | test loss |\n|---|---|---|---|---|---|")
    print(f"| PyTorch fp32 | 32/32 |  | {100 * fp32:.2f}% | +0.00 | {fp32_loss:.4f} |")
    per_tensor = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8),
                         weight=MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric))
    for label, mapping in [("per-channel weights, histogram activations", get_default_qconfig_mapping("onednn")),
                           ("per-tensor min-max", QConfigMapping().set_global(per_tensor))]:
        quantized = quantize(copy.deepcopy(model), mapping, calibration)
        acc, loss = accuracy(quantized, test_x, test_y)
        print(f"| PyTorch FX (onednn) | 8/8 | {label} | {100 * acc:.2f}% | {100 * (acc - fp32):+.2f} | {loss:.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
