# The PyTorch peer of bench/imagenet_step.cpp: torchvision's ResNet-18/34/50 (weights=None, 1000
# classes) on the same synthetic batch held in memory, in the same two modes:
#   train: forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 1e-4, learning rate
#          0.1 x batch / 256 unless --lr)
#   infer: eval mode under torch.no_grad(), forward only
# --channels-last puts the model and the batch in channels-last memory format (PyTorch's oneDNN
# convolutions may be faster so); bench/imagenet_cpu.sh times both layouts. Threads: OMP_NUM_THREADS
# when set, otherwise every core. Each timed step is clocked on its own after the warm-up; the
# line printed has bench/imagenet_step.cpp's format, with the growth of the process's peak RSS
# over the timed steps (ru_maxrss; 0 when the warm-up already reached the peak).
#   /usr/bin/python3 bench/imagenet_step_torch.py [--arch resnet18|resnet34|resnet50]
#       [--mode train|infer] [--batch-size 32] [--image-size 224] [--steps 10] [--warmup 3]
#       [--lr X] [--channels-last] [--device cpu|cuda]
import argparse, os, resource, time
import torch, torch.nn.functional as F, torchvision

p = argparse.ArgumentParser()
p.add_argument('--arch', default='resnet18', choices=['resnet18', 'resnet34', 'resnet50'])
p.add_argument('--mode', default='train', choices=['train', 'infer'])
p.add_argument('--batch-size', type=int, default=32)
p.add_argument('--image-size', type=int, default=224)
p.add_argument('--steps', type=int, default=10)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--lr', type=float, default=0, help='train: learning rate; 0: 0.1 * batch / 256')
p.add_argument('--channels-last', action='store_true')
p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
p.add_argument('--bf16', action='store_true', help='mixed precision: the forward under torch.autocast with bfloat16')
a = p.parse_args()
torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS') or os.cpu_count()))
torch.manual_seed(0)
dev = torch.device(a.device)
model = getattr(torchvision.models, a.arch)(weights=None).to(dev)
x = torch.randn(a.batch_size, 3, a.image_size, a.image_size, device=dev)
y = torch.arange(a.batch_size, device=dev) % 1000
if a.channels_last:
    model = model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)

def sync():
    if a.device == 'cuda': torch.cuda.synchronize()

if a.mode == 'train':
    opt = torch.optim.SGD(model.parameters(), lr=a.lr or 0.1 * a.batch_size / 256, momentum=0.9, weight_decay=1e-4)
    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss.item()  # as qnn's CPU step reads its loss
else:
    model.eval()
    def step():
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            model(x)
        sync()
        return None

for _ in range(a.warmup): step()
sync()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
ms = []
for _ in range(a.steps):
    t = time.perf_counter()
    last = step()
    ms.append(1000 * (time.perf_counter() - t))
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
mean = sum(ms) / len(ms)
layout = ('channels-last' if a.channels_last else 'NCHW') + (' bf16 autocast' if a.bf16 else '')
where = 'cuda' if a.device == 'cuda' else f'threads {torch.get_num_threads()}'
extra = f', last loss {last:.4f}' if a.mode == 'train' else ''
if a.device == 'cuda':
    extra += f', peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB allocated'
print(f"torch {torch.__version__} {a.arch} {layout} {a.device} {a.mode} batch {a.batch_size} image {a.image_size} "
      f"{where}: {a.batch_size * 1000 / mean:.2f} images/s ({mean:.1f} ms/step, fastest {min(ms):.1f} ms, "
      f"peak RSS growth {rss_growth:.1f} MiB{extra})")
