// CUDA graph capture and replay (see tensor/cuda_graph.h).
#include "tensor/allocator.h"
#include "tensor/cuda_graph.h"
#include "tensor/cuda_runtime.h"

namespace qnn {

CudaGraph::~CudaGraph() { reset(); }

void CudaGraph::reset() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  exec_ = graph_ = nullptr;
}

void CudaGraph::capture(const std::function<void()>& work) {
  reset();
  cudaStream_t s = cuda::stream();
  // The libraries' handles are created (with their workspaces) before the capture, in case the
  // work is the first to use them: a library's set-up may make calls a capture forbids.
  cuda::cudnn();
  cuda::cublas(false);
  // The graph pool first: it may allocate the arena a rehearsal asks for, before the capture.
  // Relaxed mode: a first-time cudaMalloc by the allocator during capture is allowed (it is not
  // recorded; the block simply joins the graph pool).
  cuda_graph_pool_capture(true);
  const cudaError_t began = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (began != cudaSuccess) cuda_graph_pool_capture(false);
  QNN_CUDA_CHECK(began, "starting graph capture");
  cudaGraph_t graph = nullptr;
  try {
    work();
  } catch (...) {
    cuda_graph_pool_capture(false);
    cudaStreamEndCapture(s, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  cuda_graph_pool_capture(false);
  QNN_CUDA_CHECK(cudaStreamEndCapture(s, &graph), "ending graph capture (was something synchronised inside it?)");
  graph_ = graph;
  cudaGraphExec_t exec = nullptr;
  QNN_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0), "instantiating the captured graph");
  exec_ = exec;
}

void CudaGraph::rehearse(const std::function<void()>& work) {
  cuda_graph_pool_rehearse(true);
  try {
    work();
  } catch (...) {
    cuda_graph_pool_rehearse(false);  // a capture follows the part recorded, then the pool
    throw;
  }
  cuda_graph_pool_rehearse(false);
}

size_t CudaGraph::node_count() const {
  if (!graph_) return 0;
  size_t count = 0;
  QNN_CUDA_CHECK(cudaGraphGetNodes(static_cast<cudaGraph_t>(graph_), nullptr, &count), "counting the graph's nodes");
  return count;
}

void CudaGraph::replay() {
  QNN_CHECK(exec_ != nullptr, "replay() before capture()");
  QNN_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), cuda::stream()), "launching the captured graph");
}

}  // namespace qnn
