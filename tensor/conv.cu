// CUDA convolution, the twin of tensor/conv.cpp (formulas in tensor/conv.h), through cuDNN's
// convolution API (cudnnConvolutionForward / BackwardData / BackwardFilter), or, with
// backend_options().cudnn off, through im2col + cuBLAS (tensor/conv_gemm.cu). The descriptors and
// the algorithm choice of each shape are tensor/conv_plan.cu's.
//
// Images may be NCHW or channels-last (NHWC, tensor/tensor.h): cuDNN is told which
// (CUDNN_TENSOR_NHWC), its fastest tensor-core kernels read and write NHWC, and the results come
// in the input's format (y in x's, dx in dy's). The master weight and its gradient stay
// [O, C, KH, KW] row-major in either case, so the flat parameter and gradient buffers, and the
// quantizers that read them, do not change. What cuDNN multiplies is the weight in the images'
// form (conv2d_weight_form, conv2d_weight_for): with NHWC images the filter is KRSC ([O, KH, KW, C] in memory, held as
// a channels-last [O, C, KH, KW] tensor), the filter layout of cuDNN's NHWC kernels and the one
// PyTorch passes with channels-last models; cuDNN's weight gradient then comes in KRSC too and a
// kernel here adds it into the row-major dw. cuDNN also accepts the KCRS weight beside NHWC
// images, reordering inside as it needs: backend_options().krsc_filters = false passes it so, for
// the benchmark to compare (build/bench/train_step --kcrs-filters). The im2col path works on NCHW
// and converts channels-last operands on the way.
//
// Images may also hold bf16 (a --precision bf16 step, docs/bf16.md): x, y, dy and dx are then bf16,
// and the weight is bf16 too, as cuDNN's bf16 convolutions take x, w and y of one type. The float32
// weight (the master copy the optimizer updates) is rounded by the same conversion, once per
// forward in the autograd op (autograd/functions_linear_conv.cpp), which keeps the copy for the
// input gradient, or, in a training step, once per step for all weights together
// (autograd/conv_weight_forms.h, whose gradients cuDNN adds into in its form:
// conv2d_backward_weight_into_form); a float32 weight given here is converted by each call. cuDNN multiplies the bf16
// operands and sums in float; each output is rounded once to bf16. The weight gradient comes out of
// cuDNN in bf16 and is added into the float32 dw by the same kernel. Convolutions with a bias take
// float32 images only. The im2col path converts bf16 operands to float32 and back.
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

// A weight gradient, which accumulates: on the GPU, float32 and [O, C, KH, KW] row-major.
void check_weight_grad(const char* op, const Tensor& dw, const ConvGeometry& g) {
  check_on_gpu(op, "weight gradient", dw, g);
  if (dw.is_channels_last() || dw.is_bf16())
    throw Error(str("[", op, "] the weight gradient is ", dw.is_bf16() ? "bf16" : "channels-last",
                    "; it accumulates in float32 [O, C, KH, KW] row-major (", describe(g), ")"));
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

// The im2col path's weight: float32 [O, C, KH, KW] row-major, rounded to bf16 first for bf16
// images (what cuDNN would multiply).
Tensor float_weight_for(const Tensor& images, const Tensor& w) {
  return w.to_dtype(images.dtype()).to_dtype(DType::f32).contiguous();
}

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

// out = the float32 row-major weight w in out's type and order (KRSC when `krsc`).
template <class Out>
__global__ void weight_for_cudnn_kernel(const float* w, Out* out, int64_t n, int64_t c, int64_t rs, bool krsc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[krsc ? krsc_index(i, c, rs) : i] = from_float<Out>(w[i]);
}

// dw += g, g a weight gradient in the form cuDNN wrote it (bf16 and/or KRSC), dw float32 row-major.
template <class In>
__global__ void add_weight_grad_kernel(float* dw, const In* g, int64_t n, int64_t c, int64_t rs, bool krsc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dw[i] += to_float(g[krsc ? krsc_index(i, c, rs) : i]);
}

// The filter layout cuDNN takes beside these images (conv2d_weight_form): KRSC, as a channels-last
// tensor, or KCRS, as a row-major one.
MemoryFormat filter_format(const Tensor& images) {
  return conv2d_weight_form(images.dtype(), images.format()).format;
}

// Whether p is 16-byte aligned. A parameter or its gradient is a window into a flat buffer
// (autograd/flat_parameters.h) and may start anywhere; cuDNN chooses its algorithms on fresh,
// aligned buffers, and a vectorised kernel chosen there could fail on an unaligned pointer, so
// cuDNN is only ever given aligned weights and weight gradients.
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether cuDNN needs a weight gradient of its own for these images (then added into dw by a
// kernel) rather than adding into dw itself.
bool needs_own_grad(const Tensor& images, const Tensor& dw) {
  return images.is_bf16() || layout_of(images).krsc || !aligned16(dw.raw());
}

// An empty weight-shaped tensor in the form cuDNN takes with these images.
Tensor cudnn_form_like(const Tensor& images, const Shape& weight_shape) {
  return Tensor(weight_shape, Device::CUDA, filter_format(images), images.dtype());
}

// The weight as cuDNN multiplies it with these images: in their element type, and KRSC beside NHWC
// images (unless backend_options().krsc_filters is off). w itself when it already is (and is
// aligned); otherwise one kernel from a float32 row-major master.
Tensor cudnn_weight(const Tensor& images, const Tensor& w) {
  const MemoryFormat format = filter_format(images);
  if (w.dtype() == images.dtype() && w.format() == format && aligned16(w.raw())) return w;
  if (w.is_bf16() || w.is_channels_last()) {  // an unusual starting form: convert step by step (into fresh memory)
    const Tensor typed = w.to_dtype(images.dtype());
    return format == MemoryFormat::channels_last ? typed.channels_last() : typed.contiguous();
  }
  Tensor out = cudnn_form_like(images, w.shape());
  const int64_t n = w.numel(), c = w.shape()[1], rs = w.shape()[2] * w.shape()[3];
  if (n == 0) return out;
  const bool krsc = format == MemoryFormat::channels_last;
  if (out.is_bf16())
    weight_for_cudnn_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(w.data(), static_cast<uint16_t*>(out.raw()),
                                                                       n, c, rs, krsc);
  else
    weight_for_cudnn_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(w.data(), out.data(), n, c, rs, krsc);
  QNN_LAUNCH_CHECK("converting a ", shape_str(w.shape()), " weight for cuDNN");
  return out;
}

// dw += g, g from cudnn_form_like.
void add_weight_grad(Tensor& dw, const Tensor& g) {
  const int64_t n = dw.numel(), c = dw.shape()[1], rs = dw.shape()[2] * dw.shape()[3];
  if (n == 0) return;
  const bool krsc = g.is_channels_last();
  if (g.is_bf16())
    add_weight_grad_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
        dw.data(), static_cast<const uint16_t*>(g.raw()), n, c, rs, krsc);
  else
    add_weight_grad_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dw.data(), static_cast<const float*>(g.raw()),
                                                                      n, c, rs, krsc);
  QNN_LAUNCH_CHECK("adding a ", shape_str(dw.shape()), " weight gradient from cuDNN's form");
}

}  // namespace

Tensor conv2d_weight_for(const Tensor& x, const Tensor& w) {
  QNN_CHECK(w.is_cuda(), "conv2d_weight_for: the weight ", shape_str(w.shape()), " is on the CPU, the images on the GPU");
  QNN_CHECK(w.dim() == 4, "conv2d_weight_for: the weight is ", shape_str(w.shape()), ", expected [O, C, KH, KW]");
  if (!backend_options().cudnn) return w.to_dtype(x.dtype()).contiguous();  // what the im2col path rounds it to
  return cudnn_weight(x, w);
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), p);
  check_on_gpu("conv2d_forward", "weight", w, g);
  check_on_gpu("conv2d_forward", "bias", bias, g);
  refuse_bf16_bias("conv2d_forward", x, bias, g);
  Tensor y;
  if (g.k() == 0) {  // no input channels: empty sums on either path (cuBLAS refuses a leading dimension of 0)
    y = Tensor({g.n, g.o, g.ho, g.wo}, Device::CUDA, x.format(), x.dtype());
    y.zero();
  } else if (!backend_options().cudnn) {
    y = like_images(conv2d_forward_gemm(g, float_nchw(x), float_weight_for(x, w)), x);
  } else {
    y = Tensor({g.n, g.o, g.ho, g.wo}, Device::CUDA, x.format(), x.dtype());
    if (y.numel() > 0) {
      const std::string what = describe(g, layout_of(x));
      const Tensor wx = cudnn_weight(x, w);
      ConvPlan& plan = plan_for("conv2d_forward", g, layout_of(x), what);
      const float one = 1.0f, zero = 0.0f;
      run_with_choice(
          plan, kForward, what, [&]() -> const Choice& { return choose_forward(plan, x, wx, y, what); },
          [&](const Choice& c, void* ws) {
            return cudnnConvolutionForward(cudnn(), &one, plan.x, x.raw(), plan.w, wx.raw(), plan.conv[kForward],
                                           cudnnConvolutionFwdAlgo_t(c.algo), ws, c.workspace, &zero, plan.y, y.raw());
          });
    }
  }
  if (bias.defined()) conv2d_add_bias(g, y, bias);
  return y;
}

namespace {

// dx = conv2d_backward_data(dy, w) + beta * dx through cuDNN (beta 0 or 1: cuDNN's output blending).
void backward_data_cudnn(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx, float beta) {
  const std::string what = describe(g, layout_of(dy));
  const Tensor wd = cudnn_weight(dy, w);
  ConvPlan& plan = plan_for("conv2d_backward_data", g, layout_of(dy), what);
  const float one = 1.0f;
  run_with_choice(
      plan, kBackwardData, what, [&]() -> const Choice& { return choose_backward_data(plan, dy, wd, dx, what); },
      [&](const Choice& c, void* ws) {
        return cudnnConvolutionBackwardData(cudnn(), &one, plan.w, wd.raw(), plan.y, dy.raw(), plan.conv[kBackwardData],
                                            cudnnConvolutionBwdDataAlgo_t(c.algo), ws, c.workspace, &beta, plan.x,
                                            dx.raw());
      });
}

}  // namespace

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p) {
  const ConvGeometry g = conv_geometry(x_shape, w.shape(), p);
  check_on_gpu("conv2d_backward_data", "weight", w, g);
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
  check_on_gpu("conv2d_backward_data", "weight", w, g);
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

namespace {

// dw_out = dL/dw + beta * dw_out through cuDNN, dw_out in cuDNN's form for x.
void backward_weight_cudnn(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw_out, float beta) {
  const std::string what = describe(g, layout_of(x));
  ConvPlan& plan = plan_for("conv2d_backward_weight", g, layout_of(x), what);
  const float one = 1.0f;
  run_with_choice(
      plan, kBackwardWeight, what,
      [&]() -> const Choice& { return choose_backward_weight(plan, x, dy, dw_out, what); },
      [&](const Choice& c, void* ws) {
        return cudnnConvolutionBackwardFilter(cudnn(), &one, plan.x, x.raw(), plan.y, dy.raw(),
                                              plan.conv[kBackwardWeight], cudnnConvolutionBwdFilterAlgo_t(c.algo), ws,
                                              c.workspace, &beta, plan.w, dw_out.raw());
      });
}

void check_images_pair(const char* op, const Tensor& x, const Tensor& dy, const ConvGeometry& g) {
  check_on_gpu(op, "output gradient", dy, g);
  check_same_format(op, "x", x, "the output gradient", dy, g);
  check_same_type(op, "x", x, "the output gradient", dy, g);
}

}  // namespace

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), dw.shape(), p);
  check_images_pair("conv2d_backward_weight", x, dy, g);
  check_weight_grad("conv2d_backward_weight", dw, g);
  check_on_gpu("conv2d_backward_weight", "bias gradient", db, g);
  refuse_bf16_bias("conv2d_backward_weight", x, db, g);
  if (!backend_options().cudnn) {
    conv2d_backward_weight_gemm(g, float_nchw(x), float_nchw(dy), dw);
  } else if (dy.numel() > 0 && dw.numel() > 0) {
    // bf16 or NHWC images (or an unaligned dw): cuDNN writes the gradient in its form (beta = 0),
    // which a kernel then adds into dw; float NCHW images: cuDNN adds into dw itself (beta = 1).
    if (needs_own_grad(x, dw)) {
      Tensor dw_out = cudnn_form_like(x, dw.shape());
      backward_weight_cudnn(g, x, dy, dw_out, 0.0f);
      add_weight_grad(dw, dw_out);
    } else {
      backward_weight_cudnn(g, x, dy, dw, 1.0f);
    }
  }
  if (db.defined()) conv2d_bias_grad(g, dy, db);
}

void conv2d_backward_weight_into_form(const Tensor& x, const Tensor& dy, Tensor& dw_form, ConvParams p) {
  const char* op = "conv2d_backward_weight_into_form";
  const ConvGeometry g = conv_geometry(x.shape(), dw_form.shape(), p);
  check_images_pair(op, x, dy, g);
  check_on_gpu(op, "weight gradient", dw_form, g);
  const WeightForm form = conv2d_weight_form(x.dtype(), x.format());
  if (!backend_options().cudnn || dw_form.dtype() != form.dtype || dw_form.format() != form.format ||
      !aligned16(dw_form.raw()))
    throw Error(str("[", op, "] the weight gradient is not in the form cuDNN takes beside these images, or cuDNN is "
                    "off (", describe(g, layout_of(x)), ")"));
  if (dy.numel() > 0 && dw_form.numel() > 0) backward_weight_cudnn(g, x, dy, dw_form, 1.0f);
}

}  // namespace qnn::cuda
