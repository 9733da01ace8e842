"""The peer of build/bench/image_loader: PyTorch's DataLoader over torchvision's ImageFolder
(PIL decoding, torchvision 0.14 transforms), one core (num_workers=0, torch.set_num_threads(1)),
batch 32, the folder cycled to --images samples. Prints one line per transform:
    torch train: <images/s> images/s (<n> images)
    torch eval: <images/s> images/s (<n> images)
Run with Debian's Python: /usr/bin/python3 bench/image_loader_torch.py --dir FOLDER
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets, transforms


class Cycled(Dataset):
    def __init__(self, inner, count):
        self.inner, self.count = inner, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return self.inner[i % len(self.inner)]


def rate(root, train, images, batch_size):
    normalize = transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if train:
        t = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                transforms.ToTensor(), normalize])
    else:
        t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalize])
    data = Cycled(datasets.ImageFolder(root, t), images)
    loader = DataLoader(data, batch_size=batch_size, shuffle=train, num_workers=0)
    next(iter(DataLoader(Cycled(data.inner, batch_size), batch_size=batch_size)))  # warm-up
    start = time.perf_counter()
    seen = sum(x.shape[0] for x, _ in loader)
    return seen / (time.perf_counter() - start), seen


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for train in (True, False):
        r, n = rate(a.dir, train, a.images, a.batch_size)
        print(f"torch {'train' if train else 'eval'}: {r:.1f} images/s ({n} images)", flush=True)


if __name__ == "__main__":
    main()
