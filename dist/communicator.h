// Communicator: the few collective operations data-parallel training needs, behind one interface,
// so the gradient exchange (dist/exchange.h) is written once for every transport: MPI between
// processes on one machine or several (dist/mpi_communicator.h), NCCL between GPUs
// (dist/nccl_communicator.h, where NCCL is found), and a single process (LocalCommunicator).
//
// Every call is collective: every rank calls it, in the same order, with matching arguments.
// Messages are bytes (packed payloads, dist/payload_wire.h) or floats (the fp32 all-reduce).
//
// Bytes sent. Each communicator counts the bytes THIS rank puts on the wire under a fixed model
// of each collective, so the count depends on the message sizes alone, not on how a library
// routes them (docs/distributed.md):
//   allgather of m bytes from this rank          (p - 1) * m    (each peer receives it once)
//   alltoall, message m_j to rank j              sum over j != rank of m_j
//   allreduce of n floats (ring: reduce-scatter + all-gather)   floor(2 (p - 1) * 4n / p)
//   broadcast of n floats from root              (p - 1) * 4n at the root, 0 elsewhere
// for p ranks. The ring all-reduce is the bandwidth-optimal algorithm MPI and NCCL use for
// large messages (Patarasuk and Yuan 2009).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

using Bytes = std::vector<uint8_t>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string transport() const = 0;  // "mpi", "nccl", "local"

  // The sum over ranks of `n` floats, in place, on every rank.
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  // The same for doubles (small statistics: a variance, a metric).
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // Every rank's message, in rank order, on every rank (messages may differ in length).
  virtual std::vector<Bytes> allgather(const Bytes& mine) = 0;
  // send[j] goes to rank j (send has size() entries; send[rank()] stays here); returns the
  // message each rank sent to this one, in rank order.
  virtual std::vector<Bytes> alltoall(const std::vector<Bytes>& send) = 0;
  // Root's `n` floats to every rank.
  virtual void broadcast(float* data, int64_t n, int root) = 0;
  // Prints "rank R: message" on stderr and ends every rank of the job with a non-zero status
  // (never returns). For errors one rank finds that the others may not: no rank is left waiting.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  int64_t bytes_sent() const { return bytes_sent_; }
  void reset_bytes_sent() { bytes_sent_ = 0; }

  // The model above, for p ranks.
  static int64_t allreduce_bytes(int64_t floats, int p) { return p > 1 ? 2 * (p - 1) * 4 * floats / p : 0; }

 protected:
  int64_t bytes_sent_ = 0;
};

// One process: every collective is the identity (sums of one rank); nothing is sent.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string transport() const override { return "local"; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  std::vector<Bytes> allgather(const Bytes& mine) override { return {mine}; }
  std::vector<Bytes> alltoall(const std::vector<Bytes>& send) override { return send; }
  void broadcast(float*, int64_t, int) override {}
  [[noreturn]] void abort(const std::string& message) override;
};

}  // namespace qnn
