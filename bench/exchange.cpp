// The data-parallel gradient exchange (dist/exchange.h) on a CIFAR ResNet-20's gradient (He et
// al. 2016; 269,722 coordinates): for fp32 and each quantizer, with the all-gather and the
// scatter-reduce (CGX's SRA) exchanges, the bytes each rank sends per step (the largest over
// the ranks) and per CIFAR-10 epoch (ceil(391 batches of 128 / ranks) steps), the wall time of
// one exchange (median of the repeats, encode + transfer + decode), and the time the bytes alone
// would take on a 10 and a 100 Gbit/s link. The gradient is seeded N(0, 0.1^2) noise: the bytes
// do not depend on the values, only on the layout (docs/distributed.md).
// Usage: mpirun -np P build/bench/exchange [repeats=20] [schemes=standard,exponential,qsgd,nuq,hadamard,amq]
// Without mpirun it runs on one rank (nothing is sent).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dist/exchange.h"
#include "dist/mpi_communicator.h"
#include "nn/resnet.h"
#include "quant/hook.h"
#include "train/flags.h"

using namespace qnn;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  const std::string schemes = argc > 2 ? argv[2] : "standard,exponential,qsgd,nuq,hadamard,amq";
  LocalCommunicator local;
  Communicator& comm = launched_by_mpirun() ? mpi_world() : local;
  const int p = comm.size();
  CifarResNet model(20, 10, Shortcut::A);
  const std::vector<ExchangeLayer> layers = exchange_layers(model.flatten());
  int64_t n = 0;
  for (const ExchangeLayer& l : layers) n += l.numel;
  std::mt19937_64 generator(uint64_t(comm.rank()) + 1);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> gradient(static_cast<size_t>(n));
  for (float& x : gradient) x = normal(generator);
  const int64_t steps_per_epoch = (391 + p - 1) / p;
  if (comm.rank() == 0) {
    std::printf("exchange of a ResNet-20 gradient (%lld coordinates) on %d rank(s) over %s, bucket 512, 16 levels\n",
                (long long)n, p, comm.transport().c_str());
    std::printf("| scheme | exchange | KB sent per step | MB per epoch | x fewer than fp32 | ms per exchange | ms at 10 Gbit/s | ms at 100 Gbit/s |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  }
  double fp32_bytes = 0;
  std::vector<std::pair<std::string, ExchangeAlgorithm>> runs = {{"fp32", ExchangeAlgorithm::fp32}};
  for (const std::string& s : split_commas(schemes))
    for (ExchangeAlgorithm a : {ExchangeAlgorithm::allgather, ExchangeAlgorithm::scatter_reduce}) runs.push_back({s, a});
  for (const auto& [scheme, algorithm] : runs) {
    std::unique_ptr<GradientQuantizationHook> hook;
    if (scheme != "fp32") {
      QuantizerOptions options;
      options.bucket_size = 512;
      options.levels = 16;
      hook = std::make_unique<GradientQuantizationHook>(make_quantizer(scheme, options), HookOptions{7});
    }
    GradientExchange exchange(comm, hook.get(), layers, {algorithm});
    std::vector<double> ms;
    double bytes = 0;
    for (int r = 0; r <= repeats; ++r) {  // the first is a warm-up (and the adaptive refit)
      std::vector<float> g = gradient;
      std::vector<float> go = {0.0f};
      comm.allreduce_sum(go.data(), 1);  // start together
      const auto start = std::chrono::steady_clock::now();
      exchange.average(g.data(), n, p);
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (r > 0) ms.push_back(t);
      bytes = double(exchange.last_bytes_sent());
    }
    std::vector<double> largest = {bytes};
    std::sort(ms.begin(), ms.end());
    std::vector<double> median = {ms[ms.size() / 2]};
    // The slowest rank and the most bytes bound a step: the maximum over ranks (sum of p maxima
    // is not needed: an all-gather of one double each).
    std::vector<double> all_bytes(static_cast<size_t>(p), 0.0), all_ms(static_cast<size_t>(p), 0.0);
    all_bytes[size_t(comm.rank())] = bytes, all_ms[size_t(comm.rank())] = median[0];
    comm.allreduce_sum(all_bytes.data(), p);
    comm.allreduce_sum(all_ms.data(), p);
    const double max_bytes = *std::max_element(all_bytes.begin(), all_bytes.end());
    const double max_ms = *std::max_element(all_ms.begin(), all_ms.end());
    if (scheme == "fp32") fp32_bytes = max_bytes;
    if (comm.rank() == 0)
      std::printf("| %s | %s | %.1f | %.1f | %.1f | %.2f | %.3f | %.4f |\n", scheme.c_str(),
                  exchange_algorithm_name(exchange.algorithm()).c_str(), max_bytes / 1e3,
                  max_bytes * double(steps_per_epoch) / 1e6, max_bytes > 0 ? fp32_bytes / max_bytes : 0.0, max_ms,
                  max_bytes * 8 / 10e9 * 1e3, max_bytes * 8 / 100e9 * 1e3);
  }
  return 0;
}
