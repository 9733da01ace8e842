// Replica synchronisation and checks: see dist/replicas.h.
#include "dist/replicas.h"

#include <cstring>
#include <vector>

#include "nn/module.h"
#include "optim/sgd.h"
#include "tensor/check.h"

namespace qnn {

void broadcast_buffers(Module& model, Communicator& comm) {
  if (comm.size() == 1) return;
  std::vector<std::pair<std::string, Tensor*>> buffers = model.named_buffers();
  std::vector<float> all;
  for (auto& [name, t] : buffers) {
    const std::vector<float> v = t->to_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  comm.broadcast(all.data(), int64_t(all.size()), 0);
  size_t at = 0;
  for (auto& [name, t] : buffers) {
    const size_t n = size_t(t->numel());
    std::vector<float> v(all.begin() + at, all.begin() + at + n);
    t->copy_from(Tensor::from_vector(v, t->shape()).to(t->device()));
    at += n;
  }
}

namespace {

void fnv1a(uint64_t& h, const Tensor& t) {
  if (!t.defined()) return;
  const std::vector<float> v = t.to_vector();
  for (float x : v) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    for (int b = 0; b < 4; ++b) h = (h ^ ((bits >> (8 * b)) & 255u)) * 0x100000001B3ull;
  }
}

}  // namespace

uint64_t replica_hash(Module& model, const SGD* sgd) {
  uint64_t h = 0xCBF29CE484222325ull;
  fnv1a(h, model.flatten().values());
  for (auto& [name, t] : model.named_buffers()) fnv1a(h, *t);
  if (sgd) fnv1a(h, const_cast<SGD*>(sgd)->momentum_buffer());
  return h;
}

void check_replicas(Module& model, const SGD* sgd, Communicator& comm, const std::string& where) {
  const uint64_t h = replica_hash(model, sgd);
  Bytes mine(8);
  std::memcpy(mine.data(), &h, 8);
  const std::vector<Bytes> all = comm.allgather(mine);
  std::string differing;
  for (int r = 1; r < comm.size(); ++r)
    if (all[size_t(r)] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  QNN_CHECK(differing.empty(), "the replicas differ at ", where, ": rank(s) ", differing,
            " hold another model than rank 0 (hash of parameters, buffers and momentum)");
}

}  // namespace qnn
