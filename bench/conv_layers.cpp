// Times the convolutions of a CIFAR ResNet-20 (He et al. 2016) at batch 128, NCHW fp32:
// forward, backward-data and backward-weight per distinct layer shape, in ms and GFLOP/s
// (2 * MACs / time, best of the repeats), and the total conv time of one training step (each shape times the number
// of layers that have it; the first layer needs no backward-data, its input is the image).
// bench/conv_layers_torch.py runs the same shapes with PyTorch for comparison.
// Usage: build/bench/conv_layers [repeats=10]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tensor/conv.h"

using namespace qnn;

namespace {

struct Layer {
  const char* name;
  int64_t c, o, hw;
  int stride;
  int count;
  bool needs_dx;
};

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
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 10;
  const int64_t batch = 128;
  const Layer layers[] = {
      {"conv1    3->16 32x32", 3, 16, 32, 1, 1, false},
      {"stage1  16->16 32x32", 16, 16, 32, 1, 6, true},
      {"down2   16->32 32->16", 16, 32, 32, 2, 1, true},
      {"stage2  32->32 16x16", 32, 32, 16, 1, 5, true},
      {"down3   32->64 16->8", 32, 64, 16, 2, 1, true},
      {"stage3  64->64 8x8", 64, 64, 8, 1, 5, true},
  };
  std::printf("%-22s %5s | %8s %7s | %8s %7s | %8s %7s\n", "layer (batch 128)", "count", "fwd ms",
              "GFLOP/s", "bwd-x ms", "GFLOP/s", "bwd-w ms", "GFLOP/s");
  double step_ms = 0, step_flop = 0;
  for (const Layer& l : layers) {
    const ConvParams p{l.stride, 1};
    const Tensor x = Tensor::uniform({batch, l.c, l.hw, l.hw}, -1, 1, 1);
    const Tensor w = Tensor::uniform({l.o, l.c, 3, 3}, -0.1f, 0.1f, 2);
    const Tensor none;
    const int64_t ho = conv_out_size(l.hw, 3, p);
    const Tensor dy = Tensor::uniform({batch, l.o, ho, ho}, -1, 1, 3);
    Tensor dw = Tensor::zeros(w.shape()), db;
    const double flop = 2.0 * batch * l.o * ho * ho * l.c * 9;
    const double f = best_ms(repeats, [&] { conv2d_forward(x, w, none, p); });
    const double bx = l.needs_dx ? best_ms(repeats, [&] { conv2d_backward_data(dy, w, x.shape(), p); }) : 0.0;
    const double bw = best_ms(repeats, [&] { conv2d_backward_weight(x, dy, dw, db, p); });
    auto gf = [&](double ms) { return ms > 0 ? flop / ms * 1e-6 : 0.0; };
    std::printf("%-22s %5d | %8.2f %7.1f | %8.2f %7.1f | %8.2f %7.1f\n", l.name, l.count, f, gf(f), bx,
                gf(bx), bw, gf(bw));
    step_ms += l.count * (f + bx + bw);
    step_flop += l.count * flop * (l.needs_dx ? 3 : 2);
  }
  std::printf("training step, all convs: %.1f ms, %.1f GFLOP/s, %.0f images/s (convs alone)\n", step_ms,
              step_flop / step_ms * 1e-6, batch / step_ms * 1e3);
  return 0;
}
