// The MPI communicator: see dist/mpi_communicator.h and dist/communicator.h. Messages of
// different lengths go through MPI_Allgatherv / MPI_Alltoallv after their lengths are exchanged;
// lengths and offsets are int in MPI-3, so one message is at most 2 GiB (a ResNet-50 gradient in
// fp32 is 100 MB).
#include "dist/mpi_communicator.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>

#include "tensor/check.h"

#ifdef QNN_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>
#endif

namespace qnn {

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

#ifdef QNN_MPI

namespace {

int checked_int(int64_t n, const char* what) {
  QNN_CHECK(n >= 0 && n <= std::numeric_limits<int>::max(), "MPI message too large: ", what, " of ", n,
            " elements (MPI counts are int)");
  return int(n);
}

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(str(call, " failed: ", std::string(text, size_t(length))));
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    // Errors come back as codes (check_mpi turns them into messages), not as an abort in MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string transport() const override { return "mpi"; }

  void allreduce_sum(float* data, int64_t n) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(n, "all-reduce"), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
    bytes_sent_ += allreduce_bytes(n, size_);
  }
  void allreduce_sum(double* data, int64_t n) override {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, checked_int(n, "all-reduce"), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
    bytes_sent_ += 2 * allreduce_bytes(n, size_);
  }

  std::vector<Bytes> allgather(const Bytes& mine) override {
    const int length = checked_int(int64_t(mine.size()), "all-gather");
    std::vector<int> lengths(size_t(size_), 0), offsets(size_t(size_), 0);
    check_mpi(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    const int64_t total = layout(lengths, offsets);
    Bytes all(static_cast<size_t>(total));
    check_mpi(MPI_Allgatherv(mine.data(), length, MPI_BYTE, all.data(), lengths.data(), offsets.data(), MPI_BYTE,
                             MPI_COMM_WORLD),
              "MPI_Allgatherv");
    bytes_sent_ += int64_t(size_ - 1) * length;
    return split(all, lengths, offsets);
  }

  std::vector<Bytes> alltoall(const std::vector<Bytes>& send) override {
    QNN_CHECK(int(send.size()) == size_, "alltoall needs one message per rank (", size_, "), got ", send.size());
    std::vector<int> send_lengths(static_cast<size_t>(size_)), send_offsets(static_cast<size_t>(size_)), receive_lengths(static_cast<size_t>(size_)),
        receive_offsets(static_cast<size_t>(size_));
    Bytes packed;
    for (int j = 0; j < size_; ++j) {
      send_lengths[size_t(j)] = checked_int(int64_t(send[size_t(j)].size()), "all-to-all");
      if (j != rank_) bytes_sent_ += int64_t(send[size_t(j)].size());
    }
    layout(send_lengths, send_offsets);
    for (const Bytes& b : send) packed.insert(packed.end(), b.begin(), b.end());
    check_mpi(MPI_Alltoall(send_lengths.data(), 1, MPI_INT, receive_lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
              "MPI_Alltoall");
    Bytes received(static_cast<size_t>(layout(receive_lengths, receive_offsets)));
    check_mpi(MPI_Alltoallv(packed.data(), send_lengths.data(), send_offsets.data(), MPI_BYTE, received.data(),
                            receive_lengths.data(), receive_offsets.data(), MPI_BYTE, MPI_COMM_WORLD),
              "MPI_Alltoallv");
    return split(received, receive_lengths, receive_offsets);
  }

  void broadcast(float* data, int64_t n, int root) override {
    check_mpi(MPI_Bcast(data, checked_int(n, "broadcast"), MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Bcast");
    if (rank_ == root) bytes_sent_ += int64_t(size_ - 1) * 4 * n;
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);  // MPI_Abort does not return; should it, this rank still stops
  }

 private:
  // Offsets from lengths; returns the total, which must fit MPI's int displacements.
  static int64_t layout(const std::vector<int>& lengths, std::vector<int>& offsets) {
    int64_t total = 0;
    for (size_t j = 0; j < lengths.size(); ++j) {
      offsets[j] = checked_int(total, "gathered messages");
      total += lengths[j];
    }
    checked_int(total, "gathered messages");
    return total;
  }
  static std::vector<Bytes> split(const Bytes& all, const std::vector<int>& lengths, const std::vector<int>& offsets) {
    std::vector<Bytes> out(lengths.size());
    for (size_t j = 0; j < lengths.size(); ++j)
      out[j].assign(all.begin() + offsets[j], all.begin() + offsets[j] + lengths[j]);
    return out;
  }

  int rank_ = 0, size_ = 1;
};

std::unique_ptr<MpiCommunicator>& world_instance() {
  static std::unique_ptr<MpiCommunicator> world;
  return world;
}

}  // namespace

bool mpi_built() { return true; }

Communicator& mpi_world() {
  auto& world = world_instance();
  if (!world) world = std::make_unique<MpiCommunicator>();
  return *world;
}

bool mpi_active() { return world_instance() != nullptr; }

int mpi_local_rank() {
  mpi_world();
  MPI_Comm machine = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine),
            "MPI_Comm_split_type (the ranks of this machine)");
  int rank = 0;
  check_mpi(MPI_Comm_rank(machine, &rank), "MPI_Comm_rank");
  MPI_Comm_free(&machine);
  return rank;
}

void abort_mpi_job(const std::string& message) {
  if (mpi_active() && world_instance()->size() > 1) world_instance()->abort(message);
}

#else  // built without MPI

bool mpi_built() { return false; }

Communicator& mpi_world() {
  throw Error("this qnn was built without MPI (mpicxx was not found when it was built): install libopenmpi-dev and "
              "openmpi-bin, then make again");
}

bool mpi_active() { return false; }

int mpi_local_rank() { return 0; }

void abort_mpi_job(const std::string&) {}

#endif

}  // namespace qnn
