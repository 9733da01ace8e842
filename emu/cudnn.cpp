// The cuDNN calls qnn makes, on the CPU, for the emulated build (docs/cuda-emulator.md): 2-D
// convolution of float or bf16 tensors, NCHW or NHWC, with KCRS or KRSC filters (KRSC beside
// NCHW images is refused, as qnn never passes it), forward and both backward directions, with its
// algorithm choice (its handle and descriptors: emu/cudnn_descriptors.cpp). bf16 operands are
// widened to float, the convolution computed as for float, and each output rounded to bf16 (to
// nearest, ties to even).
// Float operands are rounded to TF32 first (emu/tf32.h) unless the descriptor's math type is
// CUDNN_FMA_MATH: tensor cores take them so, and a test's tolerance must allow for it.
//
// Every direction offers three candidate algorithms, ranked 2, 1, 0. Algorithms 1 and 0 compute
// the same sums (each output a sum in double, rounded once, times alpha, plus beta times the old
// output, which is not read when beta is 0) and differ in what qnn's choice must respect: 1 needs
// a workspace and is marked non-deterministic, 0 needs none and is deterministic, so
// --deterministic and the workspace sizes are exercised. Algorithm 2, ranked first, comes with a
// math type qnn must never take (tensor cores where the descriptor asks for FMA, else a
// conversion to half precision), and refuses to run. Timing (cudnnFind*Ex) refuses to run
// while the stream captures a graph, as timing on a GPU breaks the capture, and leaves NaN in
// the output buffer it was given, as the trials of a GPU leave whatever the last one wrote.
// A call with a workspace smaller than its algorithm needs, shapes that disagree, or buffers
// outside device memory is refused with CUDNN_STATUS_BAD_PARAM. With QNN_EMU_CUDNN_REFUSE_ALGO
// in the environment ("1", "0,1"), the algorithms it names refuse to run
// (CUDNN_STATUS_NOT_SUPPORTED), as a GPU's cuDNN may refuse an algorithm its heuristics offered.
#include <cudnn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "emu/convolution.h"
#include "emu/cudnn_descriptors.h"
#include "emu/runtime.h"
#include "emu/tf32.h"

using qnn_emu::Shapes;

namespace {

constexpr size_t kWorkspaceOfFirst = 4096;  // bytes the workspace-using candidate asks for

// Why the last refused call of this thread was refused (cudnnGetLastErrorString), also printed.
thread_local char last_error[256] = "";
template <class... Args>
void report(const char* format, Args... args) {
  std::snprintf(last_error, sizeof last_error, format, args...);
  std::fprintf(stderr, "CUDA emulator: %s\n", last_error);
}

bool shapes(const cudnnTensorStruct* x, const cudnnFilterStruct* f, const cudnnConvolutionStruct* conv,
            const cudnnTensorStruct* y, Shapes& out) {
  if (!x || !f || !conv || !y || x->c != f->c || y->n != x->n || y->c != f->k || x->nhwc != y->nhwc) return false;
  if (x->bf16 != y->bf16 || x->bf16 != f->bf16) return false;  // one type for x, w and y
  if (f->krsc && !x->nhwc) return false;
  const qnn_emu::ConvolutionParams& p = conv->params;
  out = Shapes{x->n, x->c, x->h, x->w, f->k, f->h, f->w, y->h, y->w, &p, x->nhwc, f->krsc};
  return y->h == qnn_emu::output_size(x->h, p.pad_h, f->h, p.dilation_h, p.stride_h) &&
         y->w == qnn_emu::output_size(x->w, p.pad_w, f->w, p.dilation_w, p.stride_w) && y->h > 0 && y->w > 0;
}

size_t bytes_of(int a, int b, int c, int d, bool bf16) { return size_t(a) * b * c * d * (bf16 ? 2 : 4); }
size_t bytes_of(const cudnnTensorStruct* t) { return bytes_of(t->n, t->c, t->h, t->w, t->bf16); }
size_t bytes_of(const cudnnFilterStruct* f) { return bytes_of(f->k, f->c, f->h, f->w, f->bf16); }
template <class Descriptor>
size_t count_of(const Descriptor* d) {
  return bytes_of(d) / (d->bf16 ? 2 : 4);
}

// The values of an operand as floats: a bf16 one widened into `copy`, a float one in place or,
// with `tf32`, rounded to TF32 into `copy`.
const float* as_floats(const void* p, size_t count, bool bf16, bool tf32, std::vector<float>& copy) {
  if (!bf16 && !tf32) return static_cast<const float*>(p);
  copy.resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (!bf16) {
      copy[i] = qnn_emu::round_to_tf32(static_cast<const float*>(p)[i]);
      continue;
    }
    const uint32_t u = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
    std::memcpy(&copy[i], &u, sizeof u);
  }
  return copy.data();
}

// Float results stored as bf16, rounded to nearest, ties to even (NaN stays NaN).
void store_bf16(const std::vector<float>& v, void* p) {
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], sizeof u);
    const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
    static_cast<uint16_t*>(p)[i] = uint16_t(nan ? (u >> 16) | 0x40u : (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
}

// Runs `compute(in_a, in_b, out)` on float views of two inputs and an output of `out_count`
// values (its old values read where beta blends them); bf16 operands go through float copies,
// and so do float ones that the descriptor's math type lets tensor cores take as TF32 (`tf32`).
template <class Compute>
void on_floats(bool bf16, bool tf32, const void* a, size_t a_count, const void* b, size_t b_count, void* out,
               size_t out_count, bool blend, Compute compute) {
  std::vector<float> a_copy, b_copy, out_copy;
  const float* fa = as_floats(a, a_count, bf16, tf32, a_copy);
  const float* fb = as_floats(b, b_count, bf16, tf32, b_copy);
  if (!bf16) return compute(fa, fb, static_cast<float*>(out));
  if (blend) as_floats(out, out_count, true, false, out_copy);
  out_copy.resize(out_count);
  compute(fa, fb, out_copy.data());
  store_bf16(out_copy, out);
}

bool on_device(const char* what, const void* p, size_t bytes) {
  if (bytes == 0 || qnn_emu::is_device_memory(p, bytes)) return true;
  report("cuDNN convolution: %s (%zu bytes at %p) is not device memory", what, bytes, p);
  return false;
}

size_t workspace_of(int algo) { return algo == 1 ? kWorkspaceOfFirst : 0; }

// Checks what every convolution call shares and queues `work` on the handle's stream.
template <class Work>
cudnnStatus_t run(cudnnHandle_t h, const char* what, const Shapes& g, bool bf16, const cudnnConvolutionStruct* conv,
                  int algo, const void* workspace, size_t workspace_bytes, const void* x, const void* w,
                  const void* y, Work work) {
  const char* refuse = std::getenv("QNN_EMU_CUDNN_REFUSE_ALGO");
  if (refuse && std::strchr(refuse, '0' + algo)) {
    report("%s: algorithm %d refused (QNN_EMU_CUDNN_REFUSE_ALGO)", what, algo);
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (algo == 2 || conv->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) {
    report("%s: algorithm %d with math type %d, a precision qnn must not choose", what, algo, int(conv->math));
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (algo != 0 && algo != 1) return CUDNN_STATUS_BAD_PARAM;
  if (workspace_bytes < workspace_of(algo) || !on_device("workspace", workspace, workspace_of(algo))) {
    report("cuDNN convolution: algorithm %d needs %zu bytes of workspace, was given %zu",
                 algo, workspace_of(algo), workspace_bytes);
    return CUDNN_STATUS_BAD_PARAM;
  }
  if (!on_device("x", x, bytes_of(g.n, g.c, g.h, g.w, bf16)) || !on_device("w", w, bytes_of(g.k, g.c, g.r, g.s, bf16)) ||
      !on_device("y", y, bytes_of(g.n, g.k, g.ho, g.wo, bf16)))
    return CUDNN_STATUS_BAD_PARAM;
  qnn_emu::enqueue(h->stream, what, work);
  return CUDNN_STATUS_SUCCESS;
}

// The three candidates, best first (see the file's comment).
constexpr int kCandidates = 3;
template <class Perf, class Algo>
void candidates(const cudnnConvolutionStruct* conv, int requested, int* returned, Perf* perf) {
  const int count = requested < kCandidates ? requested : kCandidates;
  for (int i = 0; i < count; ++i) {
    const int algo = kCandidates - 1 - i;
    perf[i] = Perf{};
    perf[i].algo = Algo(algo);
    perf[i].status = CUDNN_STATUS_SUCCESS;
    perf[i].time = float(i + 1);
    perf[i].memory = workspace_of(algo);
    perf[i].determinism = algo == 1 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
    perf[i].mathType = algo != 2 ? conv->math
                       : conv->math == CUDNN_FMA_MATH ? CUDNN_TENSOR_OP_MATH
                                                      : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  }
  *returned = count;
}

// cudnnFind*Ex: refused while the stream captures; the output buffer (`bytes` at `out`) is left
// holding NaN; the candidates are those of the heuristics.
template <class Perf, class Algo>
cudnnStatus_t find(cudnnHandle_t h, const char* what, void* out, size_t bytes, const cudnnConvolutionStruct* conv,
                   int requested, int* returned, Perf* perf) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(h->stream, &status);
  if (status != cudaStreamCaptureStatusNone) {
    report("cudnnFind*AlgorithmEx while the stream captures a graph");
    return CUDNN_STATUS_NOT_SUPPORTED;
  }
  if (!on_device(what, out, bytes)) return CUDNN_STATUS_BAD_PARAM;
  qnn_emu::enqueue(h->stream, "cudnnFind*AlgorithmEx", [out, bytes] {
    std::memset(out, 0xff, bytes);  // NaN in float32 and in bf16 alike
  });
  candidates<Perf, Algo>(conv, requested, returned, perf);
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

size_t cudnnGetVersion() { return CUDNN_VERSION; }
const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (CUDA emulator)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (CUDA emulator)";
    default: return "a cuDNN error (CUDA emulator)";
  }
}
void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (max_size > 0) std::snprintf(message, max_size, "%s", last_error);
  last_error[0] = '\0';
}
cudnnStatus_t cudnnOpsVersionCheck() { return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnCnnVersionCheck() { return CUDNN_STATUS_SUCCESS; }
// Forward.
cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = kCandidates;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                     const cudnnFilterDescriptor_t,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t, const int requested, int* returned,
                                                     cudnnConvolutionFwdAlgoPerf_t* perf) {
  candidates<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(conv, requested, returned, perf);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t h, const cudnnTensorDescriptor_t, const void*,
                                                     const cudnnFilterDescriptor_t, const void*,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t yd, void* y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void*, size_t) {
  return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
      h, "y", y, bytes_of(yd), conv, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                      const cudnnFilterDescriptor_t, const cudnnConvolutionDescriptor_t,
                                                      const cudnnTensorDescriptor_t, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  *bytes = workspace_of(int(algo));
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                      const void* x, const cudnnFilterDescriptor_t wd, const void* w,
                                      const cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
                                      void* workspace, size_t workspace_bytes, const void* beta,
                                      const cudnnTensorDescriptor_t yd, void* y) {
  Shapes g;
  if (!shapes(xd, wd, conv, yd, g)) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool bf16 = xd->bf16;
  const bool tf32 = !bf16 && conv->math != CUDNN_FMA_MATH;  // tensor cores take float operands as TF32
  const size_t nx = count_of(xd), nw = count_of(wd), ny = count_of(yd);
  return run(h, "cudnnConvolutionForward", g, bf16, conv, int(algo), workspace, workspace_bytes, x, w, y, [=] {
    on_floats(bf16, tf32, x, nx, w, nw, y, ny, b != 0.0f, [&](const float* xp, const float* wp, float* yp) {
      qnn_emu::convolution_forward(g, a, xp, wp, b, yp);
    });
  });
}

// Backward data.
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = kCandidates;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                          const cudnnTensorDescriptor_t,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  candidates<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(conv, requested, returned, perf);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t h, const cudnnFilterDescriptor_t, const void*,
                                                          const cudnnTensorDescriptor_t, const void*,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dxd, void* dx,
                                                          const int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void*, size_t) {
  return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      h, "dx", dx, bytes_of(dxd), conv, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                           const cudnnTensorDescriptor_t,
                                                           const cudnnConvolutionDescriptor_t,
                                                           const cudnnTensorDescriptor_t,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  *bytes = workspace_of(int(algo));
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t wd,
                                           const void* w, const cudnnTensorDescriptor_t dyd, const void* dy,
                                           const cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* workspace, size_t workspace_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxd, void* dx) {
  Shapes g;
  if (!shapes(dxd, wd, conv, dyd, g)) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool bf16 = dxd->bf16;
  const bool tf32 = !bf16 && conv->math != CUDNN_FMA_MATH;  // tensor cores take float operands as TF32
  const size_t nw = count_of(wd), ndy = count_of(dyd), ndx = count_of(dxd);
  return run(h, "cudnnConvolutionBackwardData", g, bf16, conv, int(algo), workspace, workspace_bytes, dx, w, dy, [=] {
    on_floats(bf16, tf32, w, nw, dy, ndy, dx, ndx, b != 0.0f, [&](const float* wp, const float* dyp, float* dxp) {
      qnn_emu::convolution_backward_data(g, a, wp, dyp, b, dxp);
    });
  });
}

// Backward filter.
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = kCandidates;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                            const cudnnTensorDescriptor_t,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t, const int requested,
                                                            int* returned, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
  candidates<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(conv, requested, returned, perf);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnHandle_t h, const cudnnTensorDescriptor_t,
                                                            const void*, const cudnnTensorDescriptor_t, const void*,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dwd, void* dw,
                                                            const int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perf, void*, size_t) {
  return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      h, "dw", dw, bytes_of(dwd), conv, requested, returned, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                             const cudnnTensorDescriptor_t,
                                                             const cudnnConvolutionDescriptor_t,
                                                             const cudnnFilterDescriptor_t,
                                                             cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  *bytes = workspace_of(int(algo));
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t xd,
                                             const void* x, const cudnnTensorDescriptor_t dyd, const void* dy,
                                             const cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workspace,
                                             size_t workspace_bytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwd, void* dw) {
  Shapes g;
  if (!shapes(xd, dwd, conv, dyd, g)) return CUDNN_STATUS_BAD_PARAM;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool bf16 = xd->bf16;
  const bool tf32 = !bf16 && conv->math != CUDNN_FMA_MATH;  // tensor cores take float operands as TF32
  const size_t nx = count_of(xd), ndy = count_of(dyd), ndw = count_of(dwd);
  return run(h, "cudnnConvolutionBackwardFilter", g, bf16, conv, int(algo), workspace, workspace_bytes, x, dw, dy, [=] {
    on_floats(bf16, tf32, x, nx, dy, ndy, dw, ndw, b != 0.0f, [&](const float* xp, const float* dyp, float* dwp) {
      qnn_emu::convolution_backward_filter(g, a, xp, dyp, b, dwp);
    });
  });
}
