// The descriptors and algorithm choices of cuDNN convolutions (see tensor/conv_plan_cuda.h).
#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensor/conv_plan_cuda.h"

namespace qnn::cuda {

namespace {

using PlanKey = std::array<int64_t, 15>;

}  // namespace

ConvPlan::~ConvPlan() {
  if (x) cudnnDestroyTensorDescriptor(x);
  if (y) cudnnDestroyTensorDescriptor(y);
  if (w) cudnnDestroyFilterDescriptor(w);
  for (cudnnConvolutionDescriptor_t c : conv)
    if (c) cudnnDestroyConvolutionDescriptor(c);
}

std::string describe(const ConvGeometry& g) {
  return str("x [", g.n, ", ", g.c, ", ", g.h, ", ", g.w, "], w [", g.o, ", ", g.c, ", ", g.kh, ", ",
             g.kw, "], stride ", g.stride, ", padding ", g.pad);
}

namespace {

// Creates the descriptors of a shape; sizes were checked by conv_geometry.
std::unique_ptr<ConvPlan> make_plan(const char* op, const ConvGeometry& g, ImageLayout layout,
                                    const std::string& what) {
  // cuDNN's tensor descriptors hold at most 2^31 - 1 elements, whatever the dimensions.
  const int64_t limit = int64_t(1) << 31;
  for (int64_t d : {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw})
    QNN_CHECK(d < limit, op, ": dimension too large for cuDNN (", what, ")");
  QNN_CHECK(g.n * g.c * g.h * g.w < limit && g.n * g.o * g.ho * g.wo < limit, op,
            ": more than 2^31 - 1 elements in an image batch, more than cuDNN's descriptors hold (", what,
            "): use a smaller batch");
  auto plan = std::make_unique<ConvPlan>();
  QNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->x), op, " ", what);
  QNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan->y), op, " ", what);
  QNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan->w), op, " ", what);
  const cudnnTensorFormat_t images = layout.channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const cudnnDataType_t type = layout.dtype == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  QNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->x, images, type, int(g.n),
                                             int(g.c), int(g.h), int(g.w)),
                  op, " ", what);
  QNN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(plan->y, images, type, int(g.n),
                                             int(g.o), int(g.ho), int(g.wo)),
                  op, " ", what);
  // The filter KCRS, or KRSC beside NHWC images (tensor/conv.cu).
  QNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan->w, type, layout.krsc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, int(g.o),
                                             int(g.c), int(g.kh), int(g.kw)),
                  op, " ", what);
  const cudnnMathType_t math =
      backend_options().tf32 || layout.dtype == DType::bf16 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
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

}  // namespace

ConvPlan& plan_for(const char* op, const ConvGeometry& g, ImageLayout layout, const std::string& what) {
  static std::mutex mutex;
  static std::map<PlanKey, std::unique_ptr<ConvPlan>> plans;
  const BackendOptions& o = backend_options();
  const PlanKey key{g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.stride, g.pad,
                    o.deterministic, o.tf32, o.cudnn, layout.channels_last, int64_t(layout.dtype), layout.krsc};
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<ConvPlan>& slot = plans[key];
  if (!slot) slot = make_plan(op, g, layout, what);
  return *slot;
}

std::string describe(const ConvGeometry& g, ImageLayout layout) {
  return describe(g) + (layout.channels_last ? ", channels-last" : "") + (layout.dtype == DType::bf16 ? ", bf16" : "");
}

Tensor workspace(size_t bytes) {
  if (bytes == 0) return Tensor();
  return Tensor({static_cast<int64_t>((bytes + 3) / 4)}, Device::CUDA);
}

namespace {

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


// The largest workspace any usable candidate asks for: what cudnnFind*Ex is given.
template <class Perf>
size_t largest_workspace(const std::vector<Perf>& perfs, int count) {
  size_t bytes = 0;
  for (int i = 0; i < count; ++i)
    if (perfs[i].status == CUDNN_STATUS_SUCCESS && perfs[i].memory <= kWorkspaceLimit)
      bytes = std::max(bytes, perfs[i].memory);
  return bytes;
}

// The first (fastest) candidate that ran, fits the workspace limit, is deterministic if asked and
// computes at the precision allowed: each result is an (algorithm, math type) pair, and where
// tensor cores are not allowed (float32 without TF32) only FMA math is; a math type that may
// convert the operands down (to half precision) never is.
template <class Perf>
const Perf* pick(const std::vector<Perf>& perfs, int count, bool tensor_cores, const std::vector<int>& refused) {
  const bool deterministic = backend_options().deterministic;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kWorkspaceLimit) continue;
    if (std::find(refused.begin(), refused.end(), int(p.algo)) != refused.end()) continue;
    if (deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION || (!tensor_cores && p.mathType != CUDNN_FMA_MATH)) continue;
    return &p;
  }
  return nullptr;
}

// Records the chosen candidate; where tensor cores are allowed (TF32, or bf16) the descriptor
// takes the math type cuDNN chose it with (FMA stays FMA otherwise).
template <class Perf>
void adopt(ConvPlan& plan, Direction d, const std::vector<Perf>& perfs, int count, bool tensor_cores, const char* op,
           const std::string& what) {
  const Choice& c = plan.choice[d];
  const Perf* best = pick(perfs, count, tensor_cores, c.refused);
  if (!best && !c.refused.empty())
    throw Error(str("[", op, "] cuDNN refused to run every algorithm it offers (", what, "); the first refusal: ",
                    c.refusal));
  if (!best)
    throw Error(str("[", op, "] cuDNN offers no ", backend_options().deterministic ? "deterministic " : "",
                    "algorithm with a workspace under ", kWorkspaceLimit >> 20, " MiB (", what, ")"));
  if (tensor_cores) QNN_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv[d], best->mathType), op, " ", what);
  plan.choice[d].algo = static_cast<int>(best->algo);
}

}  // namespace

void set_aside_refused(ConvPlan& plan, Direction d, const Choice& c, cudnnStatus_t status, const std::string& what) {
  static const char* const kDirections[] = {"forward", "backward data", "backward weight"};
  const int category = status / 1000 * 1000;  // cuDNN 9's status codes: category + specific error
  const std::string message = cudnn_error(status);
  if ((category != CUDNN_STATUS_BAD_PARAM && category != CUDNN_STATUS_NOT_SUPPORTED) || stream_capturing(what))
    throw Error(str("[conv2d ", kDirections[d], "] cuDNN algorithm ", c.algo, " failed: ", message, " (", what, ")"));
  std::fprintf(stderr, "note: cuDNN refused to run %s algorithm %d (%s; %s): choosing another\n", kDirections[d],
               c.algo, message.c_str(), what.c_str());
  Choice& choice = plan.choice[d];
  if (choice.refused.empty()) choice.refusal = message;
  choice.refused.push_back(c.algo);
  choice.chosen = false;
}

const Choice& choose_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, Tensor& y, const std::string& what) {
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
    QNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, plan.x, x.raw(), plan.w, w.raw(), conv, plan.y,
                                                           y.raw(), max_count, &count, perfs.data(),
                                                           pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kForward, perfs, count, backend_options().tf32 || x.is_bf16(), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, plan.x, plan.w, conv, plan.y,
                                                          cudnnConvolutionFwdAlgo_t(c.algo), &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

const Choice& choose_backward_data(ConvPlan& plan, const Tensor& dy, const Tensor& w, const Tensor& dx,
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
    Tensor scratch = Tensor::empty_like(dx);  // the timing runs overwrite it; a dx being added into keeps its values
    QNN_CUDA_CHECK(cudaStreamSynchronize(stream()), op, " before timing algorithms, ", what);
    QNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, plan.w, w.raw(), plan.y, dy.raw(), conv,
                                                                plan.x, scratch.raw(), max_count, &count,
                                                                perfs.data(), pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kBackwardData, perfs, count, backend_options().tf32 || dy.is_bf16(), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, plan.w, plan.y, conv, plan.x,
                                                               cudnnConvolutionBwdDataAlgo_t(c.algo),
                                                               &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

const Choice& choose_backward_weight(ConvPlan& plan, const Tensor& x, const Tensor& dy, const Tensor& dw,
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
    Tensor scratch = Tensor::empty_like(dw);  // the timing runs overwrite it; dw keeps its sums
    QNN_CUDA_CHECK(cudaStreamSynchronize(stream()), op, " before timing algorithms, ", what);
    QNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, plan.x, x.raw(), plan.y, dy.raw(), conv,
                                                                  plan.w, scratch.raw(), max_count, &count,
                                                                  perfs.data(), pointer(ws), bytes),
                    op, " ", what);
  }
  adopt(plan, kBackwardWeight, perfs, count, backend_options().tf32 || x.is_bf16(), op, what);
  QNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, plan.x, plan.y, conv, plan.w,
                                                                 cudnnConvolutionBwdFilterAlgo_t(c.algo),
                                                                 &c.workspace),
                  op, " ", what);
  c.chosen = true;
  return c;
}

}  // namespace qnn::cuda
