// CUDA convolution, the twin of tensor/conv.cpp (formulas in tensor/conv.h), through cuDNN's
// convolution API (cudnnConvolutionForward / BackwardData / BackwardFilter), or, with
// backend_options().cudnn off, through im2col + cuBLAS (tensor/conv_gemm.cu). The descriptors and
// the algorithm choice of each shape are tensor/conv_plan.cu's.
//
// Images may be NCHW or channels-last (NHWC, tensor/tensor.h): cuDNN is told which
// (CUDNN_TENSOR_NHWC), its fastest tensor-core kernels read and write NHWC, and the results come
// in the input's format (y in x's, dx in dy's). Weights stay [O, C, KH, KW] row-major in either
// case, so the flat parameter and gradient buffers, and the quantizers that read them, do not
// change. The im2col path works on NCHW and converts channels-last operands on the way.
//
// Images may also hold bf16 (a --precision bf16 step, docs/bf16.md): x, y, dy and dx are then bf16,
// and the weight is bf16 too, as cuDNN's bf16 convolutions take x, w and y of one type: the
// autograd op (autograd/functions_linear_conv.cpp) rounds the float32 weight (the master copy the
// optimizer updates) once per forward and keeps the copy for the input gradient; a float32 weight
// given here is rounded by each call. cuDNN multiplies the bf16 operands and sums in float; each
// output is rounded once to bf16. The weight gradient comes out of cuDNN in bf16 too and is added
// into the float32 dw by a kernel here. Convolutions with a bias take float32 images only. The
// im2col path converts bf16 operands to float32 and back.
//
// Backward weight adds into dw, as the CPU version does; backward data adds into dx the same way
// for conv2d_backward_data_add (cuDNN's output blending, beta = 1). The bias is added after the
// convolution, and its gradient summed, by the kernels of tensor/conv_gemm.cu on both paths.
// Results match the CPU to fp32 rounding of the reduction (cuDNN sums in its own order), not bit
// for bit; with TF32 on, to TF32's 10-bit mantissa; in bf16, to the rounding of the operands and
// of the outputs.
#include <string>

#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/conv_gemm.h"
#include "tensor/conv_plan_cuda.h"
#include "tensor/cuda_runtime.h"
#include "tensor/elementwise.h"

namespace qnn::cuda {

namespace {

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

void check_same_type(const char* op, const char* what_a, const Tensor& a, const char* what_b, const Tensor& b,
                     const ConvGeometry& g) {
  if (a.dtype() != b.dtype())
    throw Error(str("[", op, "] ", what_a, " is ", dtype_name(a.dtype()), " but ", what_b, " is ",
                    dtype_name(b.dtype()), " (", describe(g), ")"));
}

// What cuDNN multiplies the images with: the weight itself, or its bf16 copy for bf16 images;
// for the im2col path the same values in float32.
Tensor weight_for(const Tensor& images, const Tensor& w) { return w.to_dtype(images.dtype()); }
Tensor float_weight_for(const Tensor& images, const Tensor& w) { return weight_for(images, w).to_dtype(DType::f32); }

// A result computed on float32 NCHW operands (the im2col path), in the format and type of the
// caller's images.
Tensor like_images(const Tensor& nchw, const Tensor& images) {
  return in_format(nchw, images.format()).to_dtype(images.dtype());
}
Tensor float_nchw(const Tensor& images) { return images.contiguous().to_dtype(DType::f32); }

void refuse_bf16_bias(const char* op, const Tensor& images, const Tensor& bias, const ConvGeometry& g) {
  if (images.is_bf16() && bias.defined())
    throw Error(str("[", op, "] a convolution with a bias takes float32 images, got bf16 (", describe(g), ")"));
}

__global__ void add_bf16_into_kernel(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += bf16_to_float(src[i]);
}

// dst += src, src a bf16 weight gradient, dst its float32 accumulator.
void add_bf16_into(Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  add_bf16_into_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst.data(), static_cast<const uint16_t*>(src.raw()),
                                                                  n);
  QNN_LAUNCH_CHECK("adding a bf16 weight gradient of ", n, " values");
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), p);
  check_weight("conv2d_forward", "weight", w, g);
  check_on_gpu("conv2d_forward", "bias", bias, g);
  refuse_bf16_bias("conv2d_forward", x, bias, g);
  Tensor y;
  if (!backend_options().cudnn) {
    y = like_images(conv2d_forward_gemm(g, float_nchw(x), float_weight_for(x, w)), x);
  } else {
    y = Tensor({g.n, g.o, g.ho, g.wo}, Device::CUDA, x.format(), x.dtype());
    if (g.k() == 0) {
      y.zero();  // no input channels: an empty sum
    } else if (y.numel() > 0) {
      const std::string what = describe(g, layout_of(x));
      const Tensor wx = weight_for(x, w);
      ConvPlan& plan = plan_for("conv2d_forward", g, layout_of(x), what);
      const Choice& c = choose_forward(plan, x, wx, y, what);
      Tensor ws = workspace(c.workspace);
      const float one = 1.0f, zero = 0.0f;
      QNN_CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &one, plan.x, x.raw(), plan.w, wx.raw(),
                                              plan.conv[kForward], cudnnConvolutionFwdAlgo_t(c.algo),
                                              pointer(ws), c.workspace, &zero, plan.y, y.raw()),
                      what);
    }
  }
  if (bias.defined()) conv2d_add_bias(g, y, bias);
  return y;
}

namespace {

// dx = conv2d_backward_data(dy, w) + beta * dx through cuDNN (beta 0 or 1: cuDNN's output blending).
void backward_data_cudnn(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx, float beta) {
  const std::string what = describe(g, layout_of(dy));
  const Tensor wd = weight_for(dy, w);
  ConvPlan& plan = plan_for("conv2d_backward_data", g, layout_of(dy), what);
  const Choice& c = choose_backward_data(plan, dy, wd, dx, what);
  Tensor ws = workspace(c.workspace);
  const float one = 1.0f;
  QNN_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &one, plan.w, wd.raw(), plan.y, dy.raw(),
                                               plan.conv[kBackwardData], cudnnConvolutionBwdDataAlgo_t(c.algo),
                                               pointer(ws), c.workspace, &beta, plan.x, dx.raw()),
                  what);
}

}  // namespace

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p) {
  const ConvGeometry g = conv_geometry(x_shape, w.shape(), p);
  check_weight("conv2d_backward_data", "weight", w, g);
  if (!backend_options().cudnn)
    return like_images(conv2d_backward_data_gemm(g, float_nchw(dy), float_weight_for(dy, w)), dy);
  Tensor dx(x_shape, Device::CUDA, dy.format(), dy.dtype());
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
  check_same_type("conv2d_backward_data", "the output gradient", dy, "dx", dx, g);
  if (!backend_options().cudnn) {
    // Summed in float32 and rounded once, as cuDNN's blending does.
    Tensor sum = conv2d_backward_data_gemm(g, float_nchw(dy), float_weight_for(dy, w));
    qnn::add_into(sum, float_nchw(dx));
    dx.copy_from(sum);
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
  check_same_type("conv2d_backward_weight", "x", x, "the output gradient", dy, g);
  refuse_bf16_bias("conv2d_backward_weight", x, db, g);
  if (dw.is_bf16())
    throw Error(str("[conv2d_backward_weight] the weight gradient is bf16; it accumulates in float32 (", describe(g), ")"));
  if (!backend_options().cudnn) {
    conv2d_backward_weight_gemm(g, float_nchw(x), float_nchw(dy), dw);
  } else if (dy.numel() > 0 && dw.numel() > 0) {
    const std::string what = describe(g, layout_of(x));
    // bf16 images: cuDNN writes a bf16 gradient (beta = 0) that is then added into the float dw.
    Tensor dw_out = x.is_bf16() ? Tensor(dw.shape(), Device::CUDA, MemoryFormat::contiguous, DType::bf16) : dw;
    const float one = 1.0f, beta = x.is_bf16() ? 0.0f : 1.0f;  // float: add into dw directly
    ConvPlan& plan = plan_for("conv2d_backward_weight", g, layout_of(x), what);
    const Choice& c = choose_backward_weight(plan, x, dy, dw_out, what);
    Tensor ws = workspace(c.workspace);
    QNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &one, plan.x, x.raw(), plan.y, dy.raw(),
                                                   plan.conv[kBackwardWeight],
                                                   cudnnConvolutionBwdFilterAlgo_t(c.algo), pointer(ws),
                                                   c.workspace, &beta, plan.w, dw_out.raw()),
                    what);
    if (x.is_bf16()) add_bf16_into(dw, dw_out);
  }
  if (db.defined()) conv2d_bias_grad(g, dy, db);
}

}  // namespace qnn::cuda
