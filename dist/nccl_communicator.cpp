// The NCCL communicator: see dist/nccl_communicator.h.
#include "dist/nccl_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "dist/mpi_communicator.h"
#include "tensor/check.h"
#include "tensor/device.h"

#ifdef QNN_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

namespace qnn {

#ifdef QNN_NCCL

namespace {

void check_nccl(ncclResult_t r, const char* call) {
  QNN_CHECK(r == ncclSuccess, call, " failed: ", ncclGetErrorString(r));
}
void check_cuda(cudaError_t r, const char* call) {
  QNN_CHECK(r == cudaSuccess, call, " failed: ", cudaGetErrorString(r));
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(Communicator& bootstrap) : bootstrap_(bootstrap) {
    rank_ = bootstrap.rank(), size_ = bootstrap.size();
    // The GPU the rest of qnn uses on this rank (tensor/device.h: one per rank of a machine).
    const CudaStatus& gpu = cuda_status();
    QNN_CHECK(gpu.usable, "NCCL needs a GPU on every rank; rank ", rank_, " has none: ", gpu.reason);
    const int local = mpi_local_rank();
    QNN_CHECK(gpu.device == local % gpu.device_count, "rank ", rank_, " is rank ", local, " of its machine but uses GPU ",
              gpu.device, " of ", gpu.device_count, ", where NCCL needs GPU ", local % gpu.device_count,
              ": the GPU was chosen before cuda_prefer_device(", local, "), at the first use of CUDA");
    check_cuda(cudaSetDevice(gpu.device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    Bytes mine(sizeof id);
    std::memcpy(mine.data(), &id, sizeof id);
    const std::vector<Bytes> ids = bootstrap.allgather(mine);  // rank 0's is the one
    std::memcpy(&id, ids[0].data(), sizeof id);
    bootstrap.reset_bytes_sent();
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (buffer_) cudaFree(buffer_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string transport() const override { return "nccl"; }

  void allreduce_sum(float* data, int64_t n) override { reduce(data, n, sizeof(float), ncclFloat32); }
  void allreduce_sum(double* data, int64_t n) override { reduce(data, n, sizeof(double), ncclFloat64); }

  std::vector<Bytes> allgather(const Bytes& mine) override {
    // The lengths first, then every message padded to the longest.
    std::vector<int64_t> lengths(static_cast<size_t>(size_), 0);
    lengths[size_t(rank_)] = int64_t(mine.size());
    allreduce_lengths(lengths);
    const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
    char* device = static_cast<char*>(device_buffer(size_t(longest) * size_t(size_ + 1)));
    char* send = device + size_t(longest) * size_t(size_);
    if (!mine.empty()) check_cuda(cudaMemcpyAsync(send, mine.data(), mine.size(), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    if (longest > 0) check_nccl(ncclAllGather(send, device, size_t(longest), ncclUint8, comm_, stream_), "ncclAllGather");
    Bytes all(size_t(longest) * size_t(size_));
    if (longest > 0) check_cuda(cudaMemcpyAsync(all.data(), device, all.size(), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
    bytes_sent_ += int64_t(size_ - 1) * int64_t(mine.size());
    std::vector<Bytes> out(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r)
      out[size_t(r)].assign(all.begin() + longest * r, all.begin() + longest * r + lengths[size_t(r)]);
    return out;
  }

  std::vector<Bytes> alltoall(const std::vector<Bytes>& send) override {
    QNN_CHECK(int(send.size()) == size_, "alltoall needs one message per rank (", size_, "), got ", send.size());
    // Every rank's lengths to every rank: a P x P table summed from one row each.
    std::vector<int64_t> table(size_t(size_) * size_t(size_), 0);
    for (int j = 0; j < size_; ++j) table[size_t(rank_) * size_t(size_) + size_t(j)] = int64_t(send[size_t(j)].size());
    allreduce_lengths(table);
    int64_t out_total = 0, in_total = 0;
    for (int j = 0; j < size_; ++j) {
      out_total += table[size_t(rank_) * size_t(size_) + size_t(j)];
      in_total += table[size_t(j) * size_t(size_) + size_t(rank_)];
    }
    char* device = static_cast<char*>(device_buffer(size_t(out_total + in_total)));
    char *out_at = device, *in_at = device + out_total;
    for (int j = 0; j < size_; ++j) {
      if (!send[size_t(j)].empty())
        check_cuda(cudaMemcpyAsync(out_at, send[size_t(j)].data(), send[size_t(j)].size(), cudaMemcpyHostToDevice, stream_),
                   "cudaMemcpyAsync");
      out_at += send[size_t(j)].size();
      if (j != rank_) bytes_sent_ += int64_t(send[size_t(j)].size());
    }
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    out_at = device;
    char* receive_at = in_at;
    for (int j = 0; j < size_; ++j) {
      const size_t out_n = size_t(table[size_t(rank_) * size_t(size_) + size_t(j)]);
      const size_t in_n = size_t(table[size_t(j) * size_t(size_) + size_t(rank_)]);
      if (out_n) check_nccl(ncclSend(out_at, out_n, ncclUint8, j, comm_, stream_), "ncclSend");
      if (in_n) check_nccl(ncclRecv(receive_at, in_n, ncclUint8, j, comm_, stream_), "ncclRecv");
      out_at += out_n, receive_at += in_n;
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    Bytes all(static_cast<size_t>(in_total));
    if (in_total) check_cuda(cudaMemcpyAsync(all.data(), in_at, all.size(), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
    std::vector<Bytes> out(static_cast<size_t>(size_));
    size_t at = 0;
    for (int j = 0; j < size_; ++j) {
      const size_t in_n = size_t(table[size_t(j) * size_t(size_) + size_t(rank_)]);
      out[size_t(j)].assign(all.begin() + at, all.begin() + at + in_n);
      at += in_n;
    }
    return out;
  }

  void broadcast(float* data, int64_t n, int root) override {
    float* device = static_cast<float*>(device_buffer(size_t(n) * sizeof(float)));
    check_cuda(cudaMemcpyAsync(device, data, size_t(n) * sizeof(float), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check_nccl(ncclBroadcast(device, device, size_t(n), ncclFloat32, root, comm_, stream_), "ncclBroadcast");
    check_cuda(cudaMemcpyAsync(data, device, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
    if (rank_ == root) bytes_sent_ += int64_t(size_ - 1) * 4 * n;
  }

  [[noreturn]] void abort(const std::string& message) override {
    if (comm_) ncclCommAbort(comm_), comm_ = nullptr;
    bootstrap_.abort(message);
    std::_Exit(1);  // the bootstrap's abort does not return
  }

 private:
  void reduce(void* data, int64_t n, size_t element, ncclDataType_t type) {
    void* device = device_buffer(size_t(n) * element);
    check_cuda(cudaMemcpyAsync(device, data, size_t(n) * element, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check_nccl(ncclAllReduce(device, device, size_t(n), type, ncclSum, comm_, stream_), "ncclAllReduce");
    check_cuda(cudaMemcpyAsync(data, device, size_t(n) * element, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
    bytes_sent_ += allreduce_bytes(n, size_) * int64_t(element / sizeof(float));
  }
  // Lengths (exact in int64 sums: one rank writes each entry, the others add zeros).
  void allreduce_lengths(std::vector<int64_t>& v) {
    void* device = device_buffer(v.size() * sizeof(int64_t));
    check_cuda(cudaMemcpyAsync(device, v.data(), v.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check_nccl(ncclAllReduce(device, device, v.size(), ncclInt64, ncclSum, comm_, stream_), "ncclAllReduce");
    check_cuda(cudaMemcpyAsync(v.data(), device, v.size() * sizeof(int64_t), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    wait();
  }
  void* device_buffer(size_t bytes) {
    if (bytes > capacity_) {
      if (buffer_) check_cuda(cudaFree(buffer_), "cudaFree");
      capacity_ = std::max(bytes, 2 * capacity_);
      check_cuda(cudaMalloc(&buffer_, capacity_), "cudaMalloc");
    }
    return buffer_;
  }
  void wait() { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  Communicator& bootstrap_;
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* buffer_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace

bool nccl_built() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap) {
  return std::make_unique<NcclCommunicator>(bootstrap);
}

#else

bool nccl_built() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&) {
  throw Error("this qnn was built without NCCL (it needs CUDA, MPI, and nccl.h with libnccl in the CUDA folder or /usr)");
}

#endif

}  // namespace qnn
