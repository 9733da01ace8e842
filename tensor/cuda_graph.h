// CudaGraph: the GPU work of a piece of host code, recorded once and replayed with one launch.
//
// A ResNet-20 training step on a fast GPU is hundreds of small kernels whose launch costs from
// the host exceed their run time. Capturing the step (cudaStreamBeginCapture on qnn's stream,
// run the host code once, cudaStreamEndCapture) records every kernel with its arguments and
// addresses; replay() then launches them all at once. What this asks of the captured code:
//   - no synchronisation and no reads of device data on the host (those would happen once, at
//     capture time, and never again);
//   - every value that changes between replays lives in device memory that the host updates
//     before replay() (the learning rate, the batch number: see train/trainer.h);
//   - the same addresses every replay: tensors alive across replays (parameters, gradients,
//     optimizer state, data) are allocated before capture and kept; temporaries allocated during
//     capture come from the allocator's graph pool or, after a rehearsal of the same work, its
//     graph arena (tensor/allocator.h), never handed out again;
//   - library setup (cuDNN algorithm search, cuBLAS workspaces) done in eager warm-up steps.
// A CPU-only build throws from capture(); the trainer only captures on a usable GPU.
#pragma once
#include <cstddef>
#include <functional>

namespace qnn {

class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs `work` once under capture (its GPU work is recorded, not executed) and instantiates
  // the graph. If `work` throws, capture is abandoned and the exception passes through.
  void capture(const std::function<void()>& work);
  // Runs `work` (eagerly: its GPU work is done) while the allocator records its requests and
  // releases; a later capture of the same work lays its temporaries out in one arena sized to
  // their peak, instead of keeping a block per temporary of each size (tensor/allocator.cu).
  void rehearse(const std::function<void()>& work);
  void replay();  // enqueues the recorded work on qnn's stream
  bool captured() const { return exec_ != nullptr; }
  // Nodes of the captured graph (kernels, copies, fills, and whatever cuBLAS and cuDNN recorded
  // for each of their calls); 0 before capture.
  size_t node_count() const;
  void reset();   // forgets the graph

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
};

}  // namespace qnn
