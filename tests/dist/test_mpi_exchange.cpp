// The gradient exchange between real MPI ranks (dist/exchange.h, dist/mpi_communicator.h).
//
// The "mpi: ..." cases launch `mpirun -np 2/3/4` on this test runner itself with the "mpi
// rank: ..." cases, which run only under mpirun (elsewhere they return at once) and check, on
// every rank: 32-bit payloads sum to MPI_Allreduce's result; the all-gather exchange is the
// emulated workers' quantize_and_average bit for bit, and every algorithm leaves every rank
// with the same bits; the quantized mean is unbiased with the variance the quantizer states; the
// bytes sent are the payload layout's formula; a mismatched payload is an error on every rank.
// "mpi: a rank that dies ..." checks that a dead rank ends the job instead of hanging it.
// Without MPI (no mpirun, or qnn built without it) the drivers skip with a message.
#include <doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "dist/exchange.h"
#include "dist/mpi_communicator.h"
#include "dist/payload_wire.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/dist/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// Whether the drivers can run: qnn built with MPI and mpirun on the PATH. Says why not.
bool mpi_available() {
  if (!mpi_built()) {
    MESSAGE("skipped: qnn was built without MPI (install libopenmpi-dev and openmpi-bin, then make)");
    return false;
  }
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) {
    MESSAGE("skipped: mpirun not found (Debian's openmpi-bin)");
    return false;
  }
  return true;
}

// mpirun with what a container running as root on few cores needs.
std::string mpirun(int ranks) {
  return "timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np " + std::to_string(ranks) + " ";
}

std::string self_path() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  REQUIRE(n > 0);
  return std::string(path, size_t(n));
}

// The rank's own gradient: a function of (trial, rank).
std::vector<float> rank_gradient(int64_t n, int rank, uint64_t trial = 0) {
  return seeded_gradient(1000 * trial + uint64_t(rank) + 1, n);
}

// Layers of a small network: two weights the exchange quantizes, a bias and a small weight it
// sends in fp32.
const std::vector<ExchangeLayer> kLayers = {{3000, 4}, {64, 1}, {700, 2}, {2500, 2}};
constexpr int64_t kCoordinates = 6264, kQuantized = 5500, kFp32 = 764;

bool same_on_every_rank(Communicator& comm, const std::vector<float>& v) {
  const uint64_t h = bits_hash(v);
  Bytes mine(8);
  std::memcpy(mine.data(), &h, 8);
  for (const Bytes& b : comm.allgather(mine))
    if (b != mine) return false;
  return true;
}

}  // namespace

TEST_CASE("mpi rank: 32-bit payloads sum to MPI_Allreduce's result on every algorithm") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  const std::vector<float> g = rank_gradient(kCoordinates, comm.rank());
  std::vector<float> reference = g;
  comm.allreduce_sum(reference.data(), kCoordinates);
  const std::vector<ExchangeLayer> all_quantized = {{kCoordinates, 2}};
  std::vector<std::vector<float>> results;
  for (ExchangeAlgorithm a : {ExchangeAlgorithm::allgather, ExchangeAlgorithm::scatter_reduce}) {
    auto hook = make_hook("fp32-test");
    GradientExchange exchange(comm, hook.get(), all_quantized, {a});
    std::vector<float> out = g;
    exchange.average(out.data(), kCoordinates, 1);  // the sum: 1 contributor divides by nothing
    results.push_back(out);
  }
  CHECK(results[0] == results[1]);  // both sum in rank order
  // Two ranks: a + b either way. More: MPI may add in another order, so the sums agree to the
  // rounding of p - 1 additions: |error| <= (p - 1) * 2^-24 * sum over ranks of |g|.
  std::vector<float> magnitude(g.size());
  for (size_t i = 0; i < g.size(); ++i) magnitude[i] = std::fabs(g[i]);
  comm.allreduce_sum(magnitude.data(), kCoordinates);
  bool within = true;
  for (size_t i = 0; i < g.size(); ++i)
    within = within && std::fabs(results[0][i] - reference[i]) <= (comm.size() - 1) * 6e-8 * magnitude[i];
  if (comm.size() == 2) CHECK(results[0] == reference);
  CHECK(within);
  CHECK(same_on_every_rank(comm, results[0]));
}

TEST_CASE("mpi rank: all-gather equals the emulated workers bit for bit, and every rank holds the same bits") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  const int p = comm.size();
  QuantizerOptions options;
  options.bucket_size = 256;
  options.refit_at = {0};  // the adaptive schemes refit at step 0 (on rank 0's gradient)
  const std::vector<ExchangeLayer> all_quantized = {{4000, 2}, {1500, 4}};
  for (const std::string& scheme : quantizer_names()) {
    if (scheme == "none") continue;
    CAPTURE(scheme);
    for (int64_t step = 0; step < 2; ++step) {
      // The emulated run: every rank's gradient in one process.
      std::vector<std::vector<float>> grads;
      std::vector<const float*> pointers;
      for (int r = 0; r < p; ++r) grads.push_back(rank_gradient(5500, r, uint64_t(step)));
      for (const auto& g : grads) pointers.push_back(g.data());
      auto emulated_hook = make_hook(scheme, options);
      auto hook = make_hook(scheme, options);
      if (step > 0) {  // both refit at step 0 first, each on worker / rank 0's gradient of step 0
        std::vector<float> first = rank_gradient(5500, 0, 0);
        emulated_hook->observe(first.data(), 5500);
        hook->observe(first.data(), 5500);
        emulated_hook->set_step(step), hook->set_step(step);
      }
      std::vector<float> emulated(5500);
      emulated_hook->quantize_and_average(pointers, 5500, emulated.data());
      GradientExchange exchange(comm, hook.get(), all_quantized, {ExchangeAlgorithm::allgather});
      std::vector<float> mine = grads[size_t(comm.rank())];
      exchange.average(mine.data(), 5500, p);
      CHECK(bits_hash(mine) == bits_hash(emulated));
      CHECK(hook->step() == step + 1);
      // Scatter-reduce: not the same numbers (the chunks are re-quantized), the same on every rank.
      auto sra_hook = make_hook(scheme, options);
      GradientExchange sra(comm, sra_hook.get(), kLayers, {ExchangeAlgorithm::scatter_reduce});
      std::vector<float> g = rank_gradient(kCoordinates, comm.rank(), uint64_t(step));
      sra.average(g.data(), kCoordinates, p);
      CHECK(same_on_every_rank(comm, g));
      CHECK(std::all_of(g.begin(), g.end(), [](float x) { return std::isfinite(x); }));
    }
  }
}

TEST_CASE("mpi rank: the quantized mean is unbiased, its error shrinking as variance / trials") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  const int p = comm.size();
  const std::vector<ExchangeLayer> layers = {{4096, 2}};
  for (ExchangeAlgorithm a : {ExchangeAlgorithm::allgather, ExchangeAlgorithm::scatter_reduce}) {
    // Unbiased schemes (exponential clamps coordinates below its smallest level up to it: a
    // bias smart-quantizer keeps, quant/exponential.cpp).
    for (const char* scheme : {"standard", "qsgd"}) {
      CAPTURE(scheme);
      CAPTURE(exchange_algorithm_name(a));
      QuantizerOptions options;
      options.bucket_size = 512;
      options.levels = 4;  // coarse: a large variance to see
      auto hook = make_hook(scheme, options, 5, /*record_variance=*/true);
      GradientExchange exchange(comm, hook.get(), layers, {a});
      const std::vector<float> g = rank_gradient(4096, comm.rank());
      std::vector<float> mean_of_ranks = g;
      comm.allreduce_sum(mean_of_ranks.data(), 4096);
      for (float& x : mean_of_ranks) x /= float(p);
      constexpr int kTrials = 200;
      std::vector<double> total(4096, 0.0);
      double variance_sum = 0;
      for (int t = 0; t < kTrials; ++t) {  // a new step each trial: fresh randomness
        std::vector<float> out = g;
        exchange.average(out.data(), 4096, p);
        for (int i = 0; i < 4096; ++i) total[size_t(i)] += out[size_t(i)];
        variance_sum += hook->last_variance();  // the variance of this trial's mean
      }
      double error = 0;
      for (int i = 0; i < 4096; ++i) {
        const double d = total[size_t(i)] / kTrials - mean_of_ranks[size_t(i)];
        error += d * d;
      }
      // E|mean over T trials - true mean|^2 = sum of the trials' variances / T^2.
      const double expected = variance_sum / (double(kTrials) * kTrials);
      CHECK(expected > 0);
      INFO("error ", error, ", expected ", expected);
      CHECK(error / expected > 0.75);
      CHECK(error / expected < 1.3);
    }
  }
}

TEST_CASE("mpi rank: the bytes each rank sends are the payload layout's formula") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  const int p = comm.size(), rank = comm.rank();
  QuantizerOptions options;
  options.bucket_size = 512;
  options.levels = 16;  // standard: 2 scales per bucket (minimum, unit), 4-bit indices, no table
  auto payload = [](int64_t n) {
    if (n == 0) return int64_t(0);
    return 112 + 4 * 2 * ((n + 511) / 512) + 8 * ((4 * n + 63) / 64);
  };
  const int64_t fp32 = 2 * (p - 1) * 4 * kFp32 / p;  // the ring all-reduce of the small layers
  {
    auto hook = make_hook("standard", options);
    GradientExchange exchange(comm, hook.get(), kLayers, {ExchangeAlgorithm::allgather});
    std::vector<float> g = rank_gradient(kCoordinates, rank);
    exchange.average(g.data(), kCoordinates, p);
    CHECK(exchange.last_bytes_sent() == (p - 1) * payload(kQuantized) + fp32);
  }
  {
    auto hook = make_hook("standard", options);
    GradientExchange exchange(comm, hook.get(), kLayers, {ExchangeAlgorithm::scatter_reduce});
    std::vector<float> g = rank_gradient(kCoordinates, rank);
    exchange.average(g.data(), kCoordinates, p);
    // Chunks of whole buckets: 11 buckets over p ranks.
    const int64_t per = (11 + p - 1) / p * 512;
    auto chunk = [&](int j) { return std::max<int64_t>(0, std::min<int64_t>(kQuantized, (j + 1) * per) - j * per); };
    int64_t scatter = 0;
    for (int j = 0; j < p; ++j)
      if (j != rank) scatter += payload(chunk(j));
    CHECK(exchange.last_bytes_sent() == scatter + (p - 1) * payload(chunk(rank)) + fp32);
  }
  {
    GradientExchange exchange(comm, nullptr, kLayers);
    CHECK(exchange.algorithm() == ExchangeAlgorithm::fp32);
    std::vector<float> g = rank_gradient(kCoordinates, rank);
    exchange.average(g.data(), kCoordinates, p);
    CHECK(exchange.last_bytes_sent() == 2 * (p - 1) * 4 * kCoordinates / p);
  }
}

TEST_CASE("mpi rank: a payload of another scheme, step or setting is an error on every rank") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  const int p = comm.size(), rank = comm.rank();
  const std::string other = rank == 1 ? "rank 0" : "rank 1";  // the first rank that differs from this one
  for (ExchangeAlgorithm a : {ExchangeAlgorithm::allgather, ExchangeAlgorithm::scatter_reduce}) {
    CAPTURE(exchange_algorithm_name(a));
    QuantizerOptions options;
    auto run = [&](GradientQuantizationHook& hook) {
      GradientExchange exchange(comm, &hook, kLayers, {a});
      std::vector<float> g = rank_gradient(kCoordinates, rank);
      return error_message([&] { exchange.average(g.data(), kCoordinates, p); });
    };
    auto scheme = make_hook(rank == 1 ? "standard" : "exponential", options);
    std::string m = run(*scheme);
    CHECK(contains(m, other));
    CHECK(contains(m, "every rank must run the same --quant"));
    auto step = make_hook("exponential", options);
    if (rank == 1) step->set_step(5);
    m = run(*step);
    CHECK(contains(m, "out of step"));
    QuantizerOptions bucket = options;
    if (rank == 1) bucket.bucket_size = 256;
    auto setting = make_hook("exponential", bucket);
    m = run(*setting);
    INFO(m);
    CHECK(contains(m, other));
    // All-gather: the same coordinates in another layout. Scatter-reduce: the chunks, cut on
    // bucket boundaries, already differ in length.
    if (a == ExchangeAlgorithm::allgather) CHECK(contains(m, "bucket size 256, this rank's has 512") != (rank == 1));
    CHECK((contains(m, "different settings") || contains(m, "the ranks' models or chunks differ")));
  }
  // Every rank threw after the same collective: the world is still in step.
  std::vector<float> one = {1.0f};
  comm.allreduce_sum(one.data(), 1);
  CHECK(one[0] == float(p));
}

TEST_CASE("mpi death: rank 1 dies before the exchange") {
  if (!launched_by_mpirun()) return;
  Communicator& comm = mpi_world();
  if (comm.rank() == 1) std::_Exit(3);
  auto hook = make_hook("exponential");
  GradientExchange exchange(comm, hook.get(), kLayers);
  std::vector<float> g = rank_gradient(kCoordinates, comm.rank());
  exchange.average(g.data(), kCoordinates, comm.size());  // waits for rank 1 until mpirun ends it
  FAIL("the exchange returned without rank 1");
}

TEST_CASE("mpi: the exchange across 2, 3 and 4 ranks (the 'mpi rank' cases on every rank)") {
  if (launched_by_mpirun() || !mpi_available()) return;
  for (int ranks : {2, 3, 4}) {
    CAPTURE(ranks);
    const CommandResult r = run_command(mpirun(ranks) + self_path() + " -nc '-tc=mpi rank: *'");
    CHECK_MESSAGE(r.exit_code == 0, r.output);
    // Every rank ran the five cases.
    size_t runs = 0;
    for (size_t at = r.output.find("5 passed | 0 failed"); at != std::string::npos;
         at = r.output.find("5 passed | 0 failed", at + 1))
      ++runs;
    CHECK_MESSAGE(runs == size_t(ranks), r.output);
  }
}

TEST_CASE("mpi: a rank that dies ends the job with a message instead of a hang") {
  if (launched_by_mpirun() || !mpi_available()) return;
  const CommandResult r = run_command(mpirun(2) + self_path() + " -nc '-tc=mpi death: *'");
  CHECK_MESSAGE(r.exit_code != 0, r.output);
  CHECK_MESSAGE(r.exit_code != 124, "mpirun hung until the timeout:\n" << r.output);
  CHECK_MESSAGE(contains(r.output, "exited with non-zero status"), r.output);
}
