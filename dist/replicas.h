// Keeping data-parallel replicas identical, and checking that they are.
//
// The exchange (dist/exchange.h) gives every rank the same averaged gradient, so the same SGD
// step keeps the parameters identical. Buffers are not gradients: each rank's batch-norm running
// statistics (and QAT observers' ranges) follow its own batches. broadcast_buffers copies rank
// 0's buffers to every rank after each step, as PyTorch's DistributedDataParallel broadcasts
// them from rank 0 (broadcast_buffers=True), so evaluation and checkpoints see one model.
//
// check_replicas all-gathers a 64-bit FNV-1a hash of every parameter's and buffer's bits and
// stops with a qnn::Error naming the ranks that differ from rank 0 (on every rank alike).
#pragma once
#include <cstdint>
#include <string>

#include "dist/communicator.h"

namespace qnn {

class Module;
class SGD;

void broadcast_buffers(Module& model, Communicator& comm);
// FNV-1a over the bits of the parameters, buffers and the optimizer's momentum, in their order.
uint64_t replica_hash(Module& model, const SGD* sgd);
// `where` names the point in training in the error ("epoch 1, step 3").
void check_replicas(Module& model, const SGD* sgd, Communicator& comm, const std::string& where);

}  // namespace qnn
