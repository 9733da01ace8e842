// The Communicator (dist/communicator.h) over NCCL, for ranks that each drive one GPU. Built
// when qnn is built with CUDA and MPI and NCCL's header and library are found (nccl_built());
// MPI starts the processes and carries NCCL's unique id from rank 0 to the others
// (ncclGetUniqueId, then ncclCommInitRank on every rank), after which every collective runs on
// the GPUs: ncclAllReduce (the fp32 sum), ncclAllGather (byte messages padded to the longest,
// after an all-gather of their lengths), grouped ncclSend / ncclRecv (the all-to-all),
// ncclBroadcast. Messages are host memory, as the exchange (dist/exchange.h) encodes and decodes
// payloads on the host; each call stages them through device buffers on the communicator's own
// stream and waits for it. Bytes sent are counted under the same model as MPI's.
//
// The rank that is r-th on its machine uses GPU r mod (visible GPUs): one rank per GPU (NCCL
// refuses two ranks on one GPU). qnn picks its GPU at its first use (tensor/device.h:
// cuda_prefer_device, which train/run.cpp calls with the machine rank first); a rank that has
// already settled on another GPU is refused with a message.
// abort() aborts the NCCL communicator, then ends the job through MPI.
#pragma once
#include <memory>

#include "dist/communicator.h"

namespace qnn {

bool nccl_built();
// An NCCL communicator over the ranks of `bootstrap` (an MPI world), which must outlive it.
// Errors (no NCCL in this build, no GPU, a failed NCCL call) are qnn::Errors naming the call.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap);

}  // namespace qnn
