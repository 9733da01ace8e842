// cuDNN's side of a CUDA convolution (tensor/conv.cu): the descriptors of a convolution shape and
// the algorithm chosen for each direction, kept per shape for the life of the process. Only .cu
// files include this.
//
// A plan is keyed by the geometry, the memory format and element type of the images, and the
// backend switches. Its descriptors say NCHW or NHWC (CUDNN_TENSOR_NHWC) for x and y, KCRS or
// (beside NHWC images) KRSC for the filter, float32 or bf16 (CUDNN_DATA_BFLOAT16) for x, y and
// the filter alike, and always a float compute type: cuDNN's bf16 convolutions multiply bf16
// operands and sum in float.
//
// One algorithm per direction, chosen on that direction's first call:
//   * normally by cudnnFind*AlgorithmEx, which times the candidates on the real buffers. That
//     happens in the warm-up steps, before a training step is captured as a CUDA graph; it waits
//     for the stream first (it is host-blocking anyway) and writes into scratch buffers, never
//     into a dx or dw being accumulated;
//   * if the stream is being captured already, by cudnnGet*Algorithm_v7's heuristics (no GPU
//     work, so the capture is not broken), and always under backend_options().deterministic:
//     the heuristics rank the same candidates in every process, so a resumed run chooses what
//     the run it continues chose, and its results are bit for bit the same.
// The choice is the fastest candidate that succeeded, whose workspace fits kWorkspaceLimit,
// whose math type is allowed and, under backend_options().deterministic, that cuDNN marks
// CUDNN_DETERMINISTIC. Math type for float32: CUDNN_DEFAULT_MATH (TF32 tensor cores allowed)
// when backend_options().tf32, else CUDNN_FMA_MATH (plain fp32, and only candidates cuDNN
// reports with FMA math are taken); for bf16 always CUDNN_DEFAULT_MATH (tensor cores). A
// candidate that may convert the operands to half precision (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)
// is never taken. Where tensor cores are allowed the descriptor then takes the math type cuDNN
// reported for the chosen algorithm: each candidate is an (algorithm, math type) pair.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "tensor/conv.h"
#include "tensor/cuda_runtime.h"
#include "tensor/im2col.h"  // ConvGeometry

namespace qnn::cuda {

constexpr size_t kWorkspaceLimit = size_t(64) << 20;  // 64 MiB per convolution call

enum Direction { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

struct Choice {
  bool chosen = false;
  int algo = 0;          // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  size_t workspace = 0;  // bytes
  std::vector<int> refused;  // algorithms cuDNN refused to run (run_with_choice), never chosen again
  std::string refusal;       // cuDNN's message for the first of them
};

// Descriptors and algorithm choices of one convolution shape.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv[3] = {nullptr, nullptr, nullptr};  // one per direction
  Choice choice[3];
  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan();
};

// How the images of a convolution lie in memory and what they hold.
struct ImageLayout {
  bool channels_last = false;
  DType dtype = DType::f32;
  bool krsc = false;  // the filter KRSC (channels-last images with backend_options().krsc_filters), else KCRS
};
inline ImageLayout layout_of(const Tensor& images) {
  const WeightForm form = conv2d_weight_form(images.dtype(), images.format());
  return {images.is_channels_last(), images.dtype(), form.format == MemoryFormat::channels_last};
}

std::string describe(const ConvGeometry& g);
std::string describe(const ConvGeometry& g, ImageLayout layout);  // with ", channels-last", ", bf16"

// The plan of this shape and layout under the current backend switches (created on first use).
ConvPlan& plan_for(const char* op, const ConvGeometry& g, ImageLayout layout, const std::string& what);

// The algorithm of a direction (chosen on its first call, see above), with its workspace size.
const Choice& choose_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, Tensor& y, const std::string& what);
const Choice& choose_backward_data(ConvPlan& plan, const Tensor& dy, const Tensor& w, const Tensor& dx,
                                   const std::string& what);
const Choice& choose_backward_weight(ConvPlan& plan, const Tensor& x, const Tensor& dy, const Tensor& dw,
                                     const std::string& what);

// After cuDNN returned `status` for choice `c` of direction `d`: if cuDNN refused to run the
// algorithm (CUDNN_STATUS_BAD_PARAM or NOT_SUPPORTED, a configuration it does not support) and
// the stream is not capturing, the algorithm is set aside with a note on stderr, so that the
// direction is chosen again without it; any other error is thrown.
void set_aside_refused(ConvPlan& plan, Direction d, const Choice& c, cudnnStatus_t status, const std::string& what);

// A workspace of `bytes` from the caching allocator (undefined for 0 bytes), and its pointer.
Tensor workspace(size_t bytes);
inline void* pointer(Tensor& t) { return t.defined() ? t.raw() : nullptr; }

// Makes one cuDNN convolution call of direction `d` with the direction's algorithm: `choose()`
// returns the choice (one of the choose_* above), `call(choice, workspace)` makes the call with
// it and a workspace of its size and returns cuDNN's status. cuDNN's search ran every candidate
// it ranks, its heuristics did not: an algorithm cuDNN refuses when it runs is set aside and the
// next candidate chosen and run (set_aside_refused).
template <class Choose, class Call>
void run_with_choice(ConvPlan& plan, Direction d, const std::string& what, Choose choose, Call call) {
  for (;;) {
    const Choice& c = choose();
    Tensor ws = workspace(c.workspace);
    const cudnnStatus_t status = call(c, pointer(ws));
    if (status == CUDNN_STATUS_SUCCESS) return;
    set_aside_refused(plan, d, c, status, what);
  }
}

}  // namespace qnn::cuda
