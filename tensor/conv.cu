// CUDA convolution, the twin of tensor/conv.cpp (formulas in tensor/conv.h), for float32 images
// through cuDNN's convolution API (cudnnConvolutionForward / BackwardData / BackwardFilter), or,
// with backend_options().cudnn off, through im2col + cuBLAS (tensor/conv_gemm.cu).
//
// Images may be NCHW or channels-last (NHWC, tensor/tensor.h): cuDNN is told which
// (CUDNN_TENSOR_NHWC), its fastest tensor-core kernels read and write NHWC, and the results come
// in the input's format (y in x's, dx in dy's). Weights stay [O, C, KH, KW] row-major in either
// case, so the flat parameter and gradient buffers, and the quantizers that read them, do not
// change. The im2col path works on NCHW and converts channels-last operands on the way.
//
// Plans: the tensor, filter and convolution descriptors of a shape (x shape, w shape, stride,
// padding and the backend switches) are created on first use and kept in a host-side map, with
// one algorithm per direction, chosen on that direction's first call:
//   * normally by cudnnFind*AlgorithmEx, which times the candidates on the real buffers. That
//     happens in the warm-up steps, before a training step is captured as a CUDA graph; it waits
//     for the stream first (it is host-blocking anyway) and, for backward weight, writes into
//     a scratch buffer, never into the dw being accumulated;
//   * if the stream is being captured already, by cudnnGet*Algorithm_v7's heuristics (no GPU
//     work, so the capture is not broken), and always under backend_options().deterministic:
//     the heuristics rank the same candidates in every process, so a resumed run chooses what
//     the run it continues chose, and its results are bit for bit the same.
// The choice is the fastest candidate that succeeded, whose workspace fits kWorkspaceLimit and,
// under backend_options().deterministic, that cuDNN marks CUDNN_DETERMINISTIC. Math type:
// CUDNN_DEFAULT_MATH (TF32 tensor cores allowed) when backend_options().tf32, else
// CUDNN_FMA_MATH (plain fp32); with TF32 allowed the descriptor then takes the math type cuDNN
// reported for the chosen algorithm. The workspace is a Tensor from the caching allocator,
// allocated per call: in steady state the same block every step, and no cudaMalloc.
//
// Backward weight adds into dw (cuDNN's beta = 1), as the CPU version does; backward data adds
// into dx the same way for conv2d_backward_data_add. The bias is added after the convolution,
// and its gradient summed, by the kernels of tensor/conv_gemm.cu on both paths. Results match the CPU to fp32 rounding of the reduction (cuDNN sums in its own order),
// not bit for bit; with TF32 on, to TF32's 10-bit mantissa.
#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/conv.h"
#include "tensor/conv_gemm.h"
#include "tensor/cuda_runtime.h"
#include "tensor/elementwise.h"

namespace qnn::cuda {

namespace {

constexpr size_t kWorkspaceLimit = size_t(64) << 20;  // 64 MiB per convolution call

enum Direction { kForward = 0, kBackwardData = 1, kBackwardWeight = 2 };

struct Choice {
  bool chosen = false;
  int algo = 0;          // cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t
  size_t workspace = 0;  // bytes
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
  ~ConvPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    for (cudnnConvolutionDescriptor_t c : conv)
      if (c) cudnnDestroyConvolutionDescriptor(c);
  }
};

using PlanKey = std::array<int64_t, 13>;

std::string describe(const ConvGeometry& g) {
  return str("x [", g.n, ", ", g.c, ", ", g.h, ", ", g.w, "], w [", g.o, ", ", g.c, ", ", g.kh, ", ",
             g.kw, "], stride ", g.stride, ", padding ", g.pad);
}

void check_on_gpu(const char* op, const char* what, const Tensor& t, const ConvGeometry& g) {
  if (t.defined() && !t.is_cuda())
    throw Error(str("[", op, "] ", what, " is on the CPU but the convolution runs on the GPU (",
                    describe(g), ")"));
}

// A weight or its gradient: on the GPU and [O, C, KH, KW] row-major (never channels-last).
void check_weight(const char* op, const char* what, const Tensor& w, const ConvGeometry& g) {
  check_on_gpu(op, what, w, g);
  if (w.is_channels_last())
    throw Error(str("[", op, "] the ", what, " is channels-last; weights are [O, C, KH, KW] row-major (",
                    describe(g), ")"));
}

// Creates the descriptors of a shape; sizes were checked by conv_geometry.
std::unique_ptr<ConvPlan> make_plan(const char* op, const ConvGeometry& g, bool channels_last,
                                    const std::string& what) {
  const int64_t limit = int64_t(1) << 31;
  for (int64_t d : {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw})
    QNN_CHECK(d < limit, op, ": dimension too large for cuDNN (", what, ")");
  auto plan = std::make_unique<ConvPlan>();
  QNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x), op, " ", what);
  QNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y), op, " ", what);
  QNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w), op, " ", what);
  const cudnnTensorFormat_t images = channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  QNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, images, CUDNN_DATA_FLOAT, int(g.n),
                                             int(g.c), int(g.h), int(g.w)),
                  op, " ", what);
  QNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, images, CUDNN_DATA_FLOAT, int(g.n),
                                             int(g.o), int(g.ho), int(g.wo)),
                  op, " ", what);
  QNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(g.o),
                                             int(g.c), int(g.kh), int(g.kw)),
                  op, " ", what);
  const cudnnMathType_t math = backend_options().tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  for (cudnnConvolutionDescriptor_t& c : plan->conv) {
    QNN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c), op, " ", what);
    // Cross-correlation (no kernel flip) is what tensor/conv.h computes.
    QNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(c, g.pad, g.pad, g.stride, g.stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                    op, " ", what);
    QNN_CUDNN_CHECK(cudnnSetConvolutionMathType(c, math), op, " ", what);
  }
  int n = 0, c = 0, h = 0, w = 0;
  QNN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->conv[0], plan->x, plan->w, &n, &c, &h, &w),
                  op, " ", what);
  QNN_CHECK(n == g.n && c == g.o && h == g.ho && w == g.wo, op, ": cuDNN's output shape [", n, ", ", c,
            ", ", h, ", ", w, "] differs from ours (", what, ")");
  return plan;
}

// The plan of this shape and memory format under the current backend switches (created on first use).
ConvPlan& plan_for(const char* op, const ConvGeometry& g, bool channels_last, const std::string& what) {
  static std::mutex mutex;
  static std::map<PlanKey, std::unique_ptr<ConvPlan>> plans;
  const BackendOptions& o = backend_options();
  const PlanKey key{g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.stride, g.pad,
                    o.deterministic, o.tf32, o.cudnn, channels_last};
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<ConvPlan>& slot = plans[key];
  if (!slot) slot = make_plan(op, g, channels_last, what);
  return *slot;
}

std::string describe(const ConvGeometry& g, bool channels_last) {
  return channels_last ? describe(g) + ", channels-last" : describe(g);
}

void check_same_format(const char* op, const char* what_a, const Tensor& a, const char* what_b, const Tensor& b,
                       const ConvGeometry& g) {
  if (a.format() != b.format())
    throw Error(str("[", op, "] ", what_a, " is ", a.is_channels_last() ? "channels-last" : "contiguous", " but ",
                    what_b, " is not (", describe(g), ")"));
}

// The result of an im2col-path call on NCHW operands, in the format the caller's images are in.
Tensor in_format(const Tensor& nchw, MemoryFormat format) {
  return format == MemoryFormat::channels_last ? nchw.channels_last() : nchw;
}

bool stream_capturing(const std::string& what) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  QNN_CUDA_CHECK(cudaStreamIsCapturing(stream(), &status), what);
  return status != cudaStreamCaptureStatusNone;
}

// Whether a direction's algorithm is chosen by timing the candidates (cudnnFind*Ex) rather than
// by cuDNN's heuristics: not while a graph is being captured, and not under --deterministic,
// since timings differ from process to process and a resumed run must choose the algorithms
// (and so the summation orders) of the run it continues.
bool timed_choice(const std::string& what) {
  return !backend_options().deterministic && !stream_capturing(what);
}

// A workspace of `bytes` from the caching allocator (undefined for 0 bytes).
Tensor workspace(size_t bytes) {
  if (bytes == 0) return Tensor();
  return Tensor({static_cast<int64_t>((bytes + 3) / 4)}, Device::CUDA);
}
void* pointer(Tensor& t) { return t.defined() ? t.data() : nullptr; }

// The largest workspace any usable candidate asks for: what cudnnFind*Ex is given.
template <class Perf>
size_t largest_workspace(const std::vector<Perf>& perfs, int count) {
  size_t bytes = 0;
  for (int i = 0; i < count; ++i)
    if (perfs[i].status == CUDNN_STATUS_SUCCESS && perfs[i].memory <= kWorkspaceLimit)
      bytes = std::max(bytes, perfs[i].memory);
  return bytes;
}

// The first (fastest) candidate that ran, fits the workspace limit and is deterministic if asked.
template <class Perf>
const Perf* pick(const std::vector<Perf>& perfs, int count) {
  const bool deterministic = backend_options().deterministic;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kWorkspaceLimit) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    return &p;
  }
  return nullptr;
}

// Records the chosen candidate; with TF32 allowed the descriptor takes the math type cuDNN chose
// it with (FMA stays FMA otherwise).
template <class Perf>
void adopt(ConvPlan& plan, Direction d, const Perf* best, const char* op, const std::string& what) {
  if (!best)
    throw Error(str("[", op, "] cuDNN offers no ", backend_options().deterministic ? "deterministic " : "",
                    "algorithm with a workspace under ", kWorkspaceLimit >> 20, " MiB (", what, ")"));
  if (backend_options().tf32)
    QNN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv[d], best->mathType), op, " ", what);
  plan.choice[d].algo = static_cast<int>(best->algo);
}

const Choice& choose_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, Tensor& y,
                             const std::string& what) {
  Choice& c = plan.choice[kForward];
  if (c.chosen) return c;
  const char* op = "conv2d_forward";
  cudnnHandle_t h = cudnn();
  cudnnConvolutionDescriptor_t conv = plan.conv[kForward];
  int max_count = 0, count = 0;
  QNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count), op, " ", what);
  std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(std::max(max_count, 1)));
  QNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, plan.x, plan.w, conv, plan.y, max_count, &count,
                                                         perfs.data()),
                  op, " ", what);
  if (timed_choice(what)) {
    const size_t bytes = largest_workspace(perfs, count);
    Tensor ws = workspace(bytes);
    QNN_CUDA_CHECK(cudaStreamSynchronize(stream()), op, " before timing algorithms, ", what);
    QNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, plan.x, x.data(), plan.w, w.data(), conv, plan.y,
                                                           y.data(), max_count, &count, perfs.data(),
                                                           pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kForward, pick(perfs, count), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, plan.x, plan.w, conv, plan.y,
                                                          cudnnConvolutionFwdAlgo_t(c.algo), &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

const Choice& choose_backward_data(ConvPlan& plan, const Tensor& dy, const Tensor& w, const Shape& x_shape,
                                   const std::string& what) {
  Choice& c = plan.choice[kBackwardData];
  if (c.chosen) return c;
  const char* op = "conv2d_backward_data";
  cudnnHandle_t h = cudnn();
  cudnnConvolutionDescriptor_t conv = plan.conv[kBackwardData];
  int max_count = 0, count = 0;
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count), op, " ", what);
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(std::max(max_count, 1)));
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, plan.w, plan.y, conv, plan.x, max_count,
                                                              &count, perfs.data()),
                  op, " ", what);
  if (timed_choice(what)) {
    const size_t bytes = largest_workspace(perfs, count);
    Tensor ws = workspace(bytes);
    Tensor scratch(x_shape, Device::CUDA);  // the timing runs overwrite it; a dx being added into keeps its values
    QNN_CUDA_CHECK(cudaStreamSynchronize(stream()), op, " before timing algorithms, ", what);
    QNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, plan.w, w.data(), plan.y, dy.data(), conv,
                                                                plan.x, scratch.data(), max_count, &count,
                                                                perfs.data(), pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kBackwardData, pick(perfs, count), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, plan.w, plan.y, conv, plan.x,
                                                               cudnnConvolutionBwdDataAlgo_t(c.algo),
                                                               &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

const Choice& choose_backward_weight(ConvPlan& plan, const Tensor& x, const Tensor& dy, const Shape& w_shape,
                                     const std::string& what) {
  Choice& c = plan.choice[kBackwardWeight];
  if (c.chosen) return c;
  const char* op = "conv2d_backward_weight";
  cudnnHandle_t h = cudnn();
  cudnnConvolutionDescriptor_t conv = plan.conv[kBackwardWeight];
  int max_count = 0, count = 0;
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count), op, " ", what);
  std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(std::max(max_count, 1)));
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, plan.x, plan.y, conv, plan.w, max_count,
                                                                &count, perfs.data()),
                  op, " ", what);
  if (timed_choice(what)) {
    const size_t bytes = largest_workspace(perfs, count);
    Tensor ws = workspace(bytes);
    Tensor scratch(w_shape, Device::CUDA);  // the timing runs overwrite it; dw keeps its sums
    QNN_CUDA_CHECK(cudaStreamSynchronize(stream()), op, " before timing algorithms, ", what);
    QNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, plan.x, x.data(), plan.y, dy.data(), conv,
                                                                  plan.w, scratch.data(), max_count, &count,
                                                                  perfs.data(), pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kBackwardWeight, pick(perfs, count), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, plan.x, plan.y, conv, plan.w,
                                                                 cudnnConvolutionBwdFilterAlgo_t(c.algo),
                                                                 &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), p);
  check_weight("conv2d_forward", "weight", w, g);
  check_on_gpu("conv2d_forward", "bias", bias, g);
  Tensor y;
  if (!backend_options().cudnn) {
    y = in_format(conv2d_forward_gemm(g, x.contiguous(), w), x.format());
  } else {
    y = Tensor({g.n, g.o, g.ho, g.wo}, Device::CUDA, x.format());
    if (g.k() == 0) {
      y.zero();  // no input channels: an empty sum
    } else if (y.numel() > 0) {
      const std::string what = describe(g, x.is_channels_last());
      ConvPlan& plan = plan_for("conv2d_forward", g, x.is_channels_last(), what);
      const Choice& c = choose_forward(plan, x, w, y, what);
      Tensor ws = workspace(c.workspace);
      const float one = 1.0f, zero = 0.0f;
      QNN_CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &one, plan.x, x.data(), plan.w, w.data(),
                                              plan.conv[kForward], cudnnConvolutionFwdAlgo_t(c.algo),
                                              pointer(ws), c.workspace, &zero, plan.y, y.data()),
                      what);
    }
  }
  if (bias.defined()) conv2d_add_bias(g, y, bias);
  return y;
}

namespace {

// dx = conv2d_backward_data(dy, w) + beta * dx through cuDNN (beta 0 or 1: cuDNN's output blending).
void backward_data_cudnn(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx, float beta) {
  const std::string what = describe(g, dy.is_channels_last());
  ConvPlan& plan = plan_for("conv2d_backward_data", g, dy.is_channels_last(), what);
  const Choice& c = choose_backward_data(plan, dy, w, dx.shape(), what);
  Tensor ws = workspace(c.workspace);
  const float one = 1.0f;
  QNN_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &one, plan.w, w.data(), plan.y, dy.data(),
                                               plan.conv[kBackwardData], cudnnConvolutionBwdDataAlgo_t(c.algo),
                                               pointer(ws), c.workspace, &beta, plan.x, dx.data()),
                  what);
}

}  // namespace

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p) {
  const ConvGeometry g = conv_geometry(x_shape, w.shape(), p);
  check_weight("conv2d_backward_data", "weight", w, g);
  if (!backend_options().cudnn) return in_format(conv2d_backward_data_gemm(g, dy.contiguous(), w), dy.format());
  Tensor dx(x_shape, Device::CUDA, dy.format());
  if (dx.numel() == 0 || dy.numel() == 0) {
    dx.zero();
    return dx;
  }
  backward_data_cudnn(g, dy, w, dx, 0.0f);
  return dx;
}

void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p) {
  const ConvGeometry g = conv_geometry(dx.shape(), w.shape(), p);
  check_weight("conv2d_backward_data", "weight", w, g);
  check_same_format("conv2d_backward_data", "the output gradient", dy, "dx", dx, g);
  if (!backend_options().cudnn) {
    qnn::add_into(dx, in_format(conv2d_backward_data_gemm(g, dy.contiguous(), w), dy.format()));
  } else if (dx.numel() > 0 && dy.numel() > 0) {
    backward_data_cudnn(g, dy, w, dx, 1.0f);
  }
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), dw.shape(), p);
  check_on_gpu("conv2d_backward_weight", "output gradient", dy, g);
  check_weight("conv2d_backward_weight", "weight gradient", dw, g);
  check_on_gpu("conv2d_backward_weight", "bias gradient", db, g);
  check_same_format("conv2d_backward_weight", "x", x, "the output gradient", dy, g);
  if (!backend_options().cudnn) {
    conv2d_backward_weight_gemm(g, x.contiguous(), dy.contiguous(), dw);
  } else if (dy.numel() > 0 && dw.numel() > 0) {
    const std::string what = describe(g, x.is_channels_last());
    ConvPlan& plan = plan_for("conv2d_backward_weight", g, x.is_channels_last(), what);
    const Choice& c = choose_backward_weight(plan, x, dy, dw.shape(), what);
    Tensor ws = workspace(c.workspace);
    const float one = 1.0f;  // beta = 1: add into dw
    QNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &one, plan.x, x.data(), plan.y, dy.data(),
                                                   plan.conv[kBackwardWeight],
                                                   cudnnConvolutionBwdFilterAlgo_t(c.algo), pointer(ws),
                                                   c.workspace, &one, plan.w, dw.data()),
                    what);
  }
  if (db.defined()) conv2d_bias_grad(g, dy, db);
}

}  // namespace qnn::cuda
