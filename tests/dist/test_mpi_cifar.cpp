// ./apps/cifar under mpirun on synthetic CIFAR files: `mpirun -np 2` trains the model that
// `--workers 2` trains in one process (the parameters bit for bit without quantization; within
// the variance the quantizer states with it), every rank holding the same model after every step
// (--check-replicas); rank 0 alone writes; --resume continues on the same number of ranks and
// names the right one otherwise. Skipped with a message without MPI.
#include <doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "dist/mpi_communicator.h"
#include "tensor/safetensors.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

bool mpi_usable() {
  if (launched_by_mpirun()) return false;  // a rank of another test's job
  if (!mpi_built() || std::system("command -v mpirun > /dev/null 2>&1") != 0) {
    MESSAGE("skipped: qnn was built without MPI or mpirun is missing (libopenmpi-dev, openmpi-bin)");
    return false;
  }
  return true;
}

std::string mpirun(int ranks) {
  return "OMP_NUM_THREADS=1 timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -np " +
         std::to_string(ranks) + " ";
}

// Parameters (running statistics left out: each rank's follow its own batches, and the
// distributed run keeps rank 0's, dist/replicas.h) of two checkpoints: the squared distance.
double parameter_distance(const std::string& a, const std::string& b) {
  const SafetensorsFile x = load_safetensors(a), y = load_safetensors(b);
  double d = 0;
  int compared = 0;
  for (const NamedTensor& t : x.tensors) {
    if (contains(t.name, "running_") || contains(t.name, "num_batches") || contains(t.name, "quantization.") ||
        contains(t.name, "optimizer."))
      continue;
    const std::vector<float> u = t.tensor.to_vector(), v = y.get(t.name).to_vector();
    REQUIRE(u.size() == v.size());
    for (size_t i = 0; i < u.size(); ++i) d += double(u[i] - v[i]) * double(u[i] - v[i]);
    ++compared;
  }
  CHECK(compared > 20);
  return d;
}

}  // namespace

TEST_CASE("mpi cifar: -np 2 trains --workers 2's model, every rank the same after every step") {
  if (!mpi_usable()) return;
  TempDir dir;
  const std::string data = write_cifar10_folder(dir.path);
  const std::string common = "./apps/cifar --device cpu --data " + data + " --epochs 1 --limit-train 320 --limit-test 64 --batch-size 64";
  CommandResult one = run_command("OMP_NUM_THREADS=1 " + common + " --workers 2 --checkpoint " + dir.file("one"));
  REQUIRE_MESSAGE(one.exit_code == 0, one.output);
  CommandResult two = run_command(mpirun(2) + common + " --check-replicas --checkpoint " + dir.file("two") + " --log " + dir.file("two.csv"));
  REQUIRE_MESSAGE(two.exit_code == 0, two.output);
  CHECK(contains(two.output, "distributed: 2 ranks (mpi), exchange fp32"));
  // 5 batches over 2 ranks: 3 steps, the last with rank 0's batch alone.
  CHECK(parameter_distance(dir.file("one/last.safetensors"), dir.file("two/last.safetensors")) == 0.0);
  // Rank 0 alone printed the epoch line and wrote the log.
  size_t lines = 0;
  for (size_t at = two.output.find("epoch 1/1 lr"); at != std::string::npos; at = two.output.find("epoch 1/1 lr", at + 1)) ++lines;
  CHECK(lines == 1);
  CHECK(std::filesystem::exists(dir.file("two.csv")));

  // Resumed on 3 ranks: refused, naming the 2 the checkpoint's run had.
  CommandResult three = run_command(mpirun(3) + "./apps/cifar --device cpu --data " + data + " --epochs 2 --resume " +
                                    dir.file("two/last.safetensors"));
  CHECK(three.exit_code != 0);
  CHECK_MESSAGE(contains(three.output, "resume it with mpirun -np 2"), three.output);
  // On 2 ranks it continues where the 2-worker run in one process continues.
  CommandResult resumed = run_command(mpirun(2) + "./apps/cifar --device cpu --data " + data + " --epochs 2 --check-replicas --resume " +
                                      dir.file("two/last.safetensors") + " --checkpoint " + dir.file("two"));
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  CommandResult emulated = run_command("OMP_NUM_THREADS=1 ./apps/cifar --device cpu --data " + data + " --epochs 2 --resume " +
                                       dir.file("one/last.safetensors") + " --checkpoint " + dir.file("one"));
  REQUIRE_MESSAGE(emulated.exit_code == 0, emulated.output);
  CHECK(parameter_distance(dir.file("one/last.safetensors"), dir.file("two/last.safetensors")) == 0.0);
}

TEST_CASE("mpi cifar: a quantized step of -np 2 differs from the fp32 step by the variance the quantizer states") {
  if (!mpi_usable()) return;
  TempDir dir;
  const std::string data = write_cifar10_folder(dir.path);
  // One step: 2 batches of 64 on 2 ranks. SGD's first step moves the parameters by lr (g + wd p)
  // (the momentum buffer starts as that), so the quantized and the fp32 runs differ by
  // lr (q(g) - g), whose expected squared norm is lr^2 times the variance of the mean.
  const std::string common = " --device cpu --data " + data + " --epochs 1 --limit-train 128 --limit-test 64 --batch-size 64 --lr 0.1";
  CommandResult fp32 = run_command("OMP_NUM_THREADS=1 ./apps/cifar" + common + " --workers 2 --checkpoint " + dir.file("fp32"));
  REQUIRE_MESSAGE(fp32.exit_code == 0, fp32.output);
  for (const char* algorithm : {"allgather", "scatter-reduce"}) {
    CAPTURE(algorithm);
    CommandResult q = run_command(mpirun(2) + "./apps/cifar" + common + " --quant standard --quant-levels 4 --exchange " + algorithm +
                                  " --check-replicas --checkpoint " + dir.file(algorithm));
    REQUIRE_MESSAGE(q.exit_code == 0, q.output);
    const size_t at = q.output.find("variance ");
    REQUIRE(at != std::string::npos);
    const double variance = std::atof(q.output.c_str() + at + 9);
    const double distance = parameter_distance(dir.file("fp32/last.safetensors"), dir.file(std::string(algorithm) + "/last.safetensors"));
    INFO("squared distance ", distance, ", lr^2 x variance ", 0.01 * variance);
    CHECK(variance > 0);
    CHECK(distance > 0.5 * 0.01 * variance);
    CHECK(distance < 2.0 * 0.01 * variance);
  }
}
