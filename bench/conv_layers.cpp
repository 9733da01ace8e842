// Times the distinct convolution shapes of a network, NCHW fp32: forward, backward-data and
// backward-weight per shape, in ms and GFLOP/s (2 * MACs / time, best of the repeats), and the
// total conv time of one training step (each shape times the number of layers that have it; the
// first layer needs no backward-data, its input is the image).
//   --net resnet20  CIFAR ResNet-20 (He et al. 2016), 32x32, batch 128 (the default)
//   --net resnet18  torchvision ResNet-18 at 224x224, batch 16
//   --net resnet50  torchvision ResNet-50 (stride in the 3x3, "v1.5") at 224x224, batch 16
// bench/conv_layers_torch.py runs the same shapes with PyTorch for comparison, and prints the
// per-pass ratios against the figures of this program when given its output.
//   --precision bf16  the convolutions on bf16 operands (tensor/bf16.h)
// Usage: build/bench/conv_layers [--net resnet20|resnet18|resnet50] [--repeats N] [--only LABEL]
//                                [--precision fp32|bf16]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/conv_shapes.h"
#include "tensor/conv.h"
#include "tensor/device.h"

using namespace qnn;

namespace {

template <class F>
double best_ms(int repeats, F&& f) {
  f();  // warm-up: buffers, page faults, caches
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t.front();  // the fastest run: least disturbed by other work on the machine
}

}  // namespace

int main(int argc, char** argv) {
  std::string net = "resnet20";
  int repeats = -1;
  std::string only;  // time only the shapes whose label contains this
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--net" && i + 1 < argc) {
      net = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--precision" && i + 1 < argc) {
      const std::string precision = argv[++i];
      if (precision != "fp32" && precision != "bf16") {
        std::fprintf(stderr, "conv_layers: bad --precision '%s' (expected fp32 or bf16)\n", precision.c_str());
        return 2;
      }
      backend_options().bf16 = precision == "bf16";
    } else if (a == "--repeats" && i + 1 < argc) {
      repeats = std::atoi(argv[++i]);
    } else if (i == 1 && std::atoi(argv[i]) > 0) {
      repeats = std::atoi(argv[i]);  // the older positional form
    } else {
      std::fprintf(stderr, "conv_layers: unknown argument '%s' (expected --net NAME, --repeats N, --only LABEL, --precision P)\n",
                   argv[i]);
      return 2;
    }
  }
  const ConvNet* shapes = find_conv_net(net);
  if (!shapes) {
    std::fprintf(stderr, "conv_layers: --net '%s' unknown (expected resnet20, resnet18 or resnet50)\n",
                 net.c_str());
    return 2;
  }
  if (repeats <= 0) repeats = shapes->repeats;
  const int64_t batch = shapes->batch;
  std::printf("%-28s %5s | %8s %7s | %8s %7s | %8s %7s\n", (net + " batch " + std::to_string(batch)).c_str(),
              "count", "fwd ms", "GFLOP/s", "bwd-x ms", "GFLOP/s", "bwd-w ms", "GFLOP/s");
  double step_ms = 0, step_flop = 0;
  for (const ConvShape& l : shapes->layers) {
    if (!only.empty() && conv_shape_name(l).find(only) == std::string::npos) continue;
    const ConvParams p{l.stride, l.pad};
    const Tensor x = Tensor::uniform({batch, l.c, l.hw, l.hw}, -1, 1, 1);
    const Tensor w = Tensor::uniform({l.o, l.c, l.k, l.k}, -0.1f, 0.1f, 2);
    const Tensor none;
    const int64_t ho = conv_out_size(l.hw, l.k, p);
    const Tensor dy = Tensor::uniform({batch, l.o, ho, ho}, -1, 1, 3);
    Tensor dw = Tensor::zeros(w.shape()), db;
    const double flop = 2.0 * batch * l.o * ho * ho * l.c * l.k * l.k;
    const double f = best_ms(repeats, [&] { conv2d_forward(x, w, none, p); });
    const double bx = l.needs_dx ? best_ms(repeats, [&] { conv2d_backward_data(dy, w, x.shape(), p); }) : 0.0;
    const double bw = best_ms(repeats, [&] { conv2d_backward_weight(x, dy, dw, db, p); });
    auto gf = [&](double ms) { return ms > 0 ? flop / ms * 1e-6 : 0.0; };
    std::printf("%-28s %5d | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f\n", conv_shape_name(l).c_str(),
                l.count, f, gf(f), bx, gf(bx), bw, gf(bw));
    std::fflush(stdout);
    step_ms += l.count * (f + bx + bw);
    step_flop += l.count * flop * (l.needs_dx ? 3 : 2);
  }
  std::printf("training step, all convs: %.1f ms, %.1f GFLOP/s, %.0f images/s (convs alone)\n", step_ms,
              step_flop / step_ms * 1e-6, batch / step_ms * 1e3);
  return 0;
}
