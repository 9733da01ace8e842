# The PyTorch peer of bench/train_step.cpp: the same CIFAR ResNet (option-A shortcuts), the same
# synthetic batch and SGD step, timed after warm-up. On the CPU (Debian's python3-torch here):
#   /usr/bin/python3 bench/train_step_torch.py [--batch-size 128] [--steps 20] [--channels-last] [--bf16]
# On a machine with a GPU (a recent PyTorch 2.x): --device cuda, and --graph to capture the whole
# step (forward, backward, SGD) as one CUDA graph, as PyTorch's documentation shows for
# whole-network capture; cudnn.benchmark is on; peak memory is torch.cuda.max_memory_allocated
# and _reserved over the timed steps (reset after the warm-up, as bench/train_step.cpp does).
import argparse, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts'))
from cifar_resnet_torch import ResNet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--depth', type=int, default=20)
p.add_argument('--batch-size', type=int, default=128)
p.add_argument('--steps', type=int, default=20)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--channels-last', action='store_true')
p.add_argument('--bf16', action='store_true', help='mixed precision: the forward under torch.autocast with bfloat16')
p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
p.add_argument('--graph', action='store_true', help='cuda: capture the whole step as one CUDA graph')
a = p.parse_args()
torch.manual_seed(0)
dev = torch.device(a.device)
if a.device == 'cuda':
    # cuDNN's algorithms chosen by timing them, as qnn chooses its own (tensor/conv_plan_cuda.h): the
    # fastest PyTorch rather than its default heuristics. TF32 stays at PyTorch's defaults, as in
    # qnn: allowed in cuDNN's convolutions, not in matrix products.
    torch.backends.cudnn.benchmark = True
model = ResNet(a.depth).to(dev)
x = torch.randn(a.batch_size, 3, 32, 32, device=dev)
y = torch.arange(a.batch_size, device=dev) % 10
if a.channels_last:
    model = model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
def step():
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return loss
def sync():
    if a.device == 'cuda': torch.cuda.synchronize()
if a.graph:
    # Warm up on a side stream (PyTorch's recipe), then capture one step and replay it.
    side = torch.cuda.Stream(); side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(a.warmup): step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = step()
    run = lambda: (graph.replay(), static_loss)[1]
else:
    for _ in range(a.warmup): step()
    run = step
sync()
if a.device == 'cuda':
    torch.cuda.reset_peak_memory_stats()  # the step's memory, not the warm-up's (cuDNN's benchmarking)
t = time.perf_counter()
for _ in range(a.steps): last = run()
sync()
s = time.perf_counter() - t
rate = a.batch_size * a.steps / s
layout = ('channels-last' if a.channels_last else 'NCHW') + (' bf16 autocast' if a.bf16 else '')
where = f"cuda {'graph' if a.graph else 'eager'}" if a.device == 'cuda' else f"threads {torch.get_num_threads()}"
extra = ''
if a.device == 'cuda':
    extra = (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB allocated, "
             f"{torch.cuda.max_memory_reserved() / 2**20:.1f} MiB reserved")
print(f"torch {torch.__version__} resnet{a.depth} {layout} batch {a.batch_size} {where}: "
      f"{rate:.1f} images/s ({1000 * s / a.steps:.3f} ms/step, {50000 / rate:.2f} s per 50k-image epoch, "
      f"last loss {last.item():.4f}{extra})")
