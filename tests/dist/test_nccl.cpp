// The NCCL communicator (dist/nccl_communicator.h) against the MPI one, on as many ranks as
// there are GPUs (NCCL takes one rank per GPU): the fp32 and double sums, the all-gather of
// messages of different lengths, the all-to-all and the broadcast give what MPI gives, and the
// exchange over NCCL leaves the bits the exchange over MPI leaves. The "nccl rank" case runs
// only under mpirun; the driver skips without a GPU, without NCCL or without MPI.
#include <doctest.h>
#include <unistd.h>

#include <cstdlib>

#include "dist/exchange.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "tests/apps/run_command.h"
#include "tests/gpu.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/dist/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("nccl rank: every collective and the exchange match MPI's") {
  if (!launched_by_mpirun() || !nccl_built() || !gpu_usable()) return;
  Communicator& mpi = mpi_world();
  const std::unique_ptr<Communicator> nccl = make_nccl_communicator(mpi);
  const int p = mpi.size(), rank = mpi.rank();
  REQUIRE(nccl->size() == p);
  REQUIRE(nccl->rank() == rank);
  std::vector<float> a = seeded_gradient(uint64_t(rank) + 1, 3000), b = a;
  mpi.allreduce_sum(a.data(), 3000);
  nccl->allreduce_sum(b.data(), 3000);
  if (p <= 2) CHECK(a == b);  // a + b in either order; more ranks: within rounding
  std::vector<double> x = {double(rank), 0.5}, y = x;
  mpi.allreduce_sum(x.data(), 2);
  nccl->allreduce_sum(y.data(), 2);
  CHECK(x == y);
  Bytes mine(size_t(10 + 7 * rank), uint8_t(rank + 1));  // other lengths on every rank
  CHECK(mpi.allgather(mine) == nccl->allgather(mine));
  CHECK(mpi.allgather(Bytes{}) == nccl->allgather(Bytes{}));
  std::vector<Bytes> send;
  for (int j = 0; j < p; ++j) send.push_back(Bytes(size_t(3 * j + rank), uint8_t(10 * rank + j)));
  CHECK(mpi.alltoall(send) == nccl->alltoall(send));
  std::vector<float> c = seeded_gradient(uint64_t(rank) + 9, 100), d = c;
  mpi.broadcast(c.data(), 100, 0);
  nccl->broadcast(d.data(), 100, 0);
  CHECK(c == d);
  const std::vector<ExchangeLayer> layers = {{4000, 2}, {100, 1}};
  for (ExchangeAlgorithm algorithm : {ExchangeAlgorithm::allgather, ExchangeAlgorithm::scatter_reduce}) {
    auto h1 = make_hook("standard"), h2 = make_hook("standard");
    GradientExchange over_mpi(mpi, h1.get(), layers, {algorithm}), over_nccl(*nccl, h2.get(), layers, {algorithm});
    std::vector<float> g1 = seeded_gradient(uint64_t(rank) + 3, 4100), g2 = g1;
    over_mpi.average(g1.data(), 4100, p);
    over_nccl.average(g2.data(), 4100, p);
    if (p <= 2) CHECK(g1 == g2);
    CHECK(over_mpi.last_bytes_sent() == over_nccl.last_bytes_sent());
  }
}

TEST_CASE("mpi: the NCCL communicator matches the MPI one, one rank per GPU") {
  if (launched_by_mpirun()) return;
  if (!nccl_built() || !gpu_usable()) {
    MESSAGE("skipped: needs a GPU and a build with CUDA, MPI and NCCL");
    return;
  }
  int gpus = 0;
  const CommandResult count = run_command("nvidia-smi -L | wc -l");
  gpus = std::max(1, std::atoi(count.output.c_str()));
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  REQUIRE(n > 0);
  // The test binary settles on its GPU while registering its cases, before main: each rank is
  // shown only its own GPU, which it then sees as GPU 0.
  const CommandResult r = run_command("timeout 120 mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(gpus) +
                                      " sh -c 'CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK exec " +
                                      std::string(path, size_t(n)) + " -nc \"-tc=nccl rank: *\"'");
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK_MESSAGE(contains(r.output, "1 passed | 0 failed"), r.output);
}
