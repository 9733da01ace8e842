// 2-D convolution kernels on NCHW tensors (no autograd: autograd/functions wraps them).
//   y[n, o, i, j] = bias[o] + sum_{c, u, v} w[o, c, u, v] * x[n, c, i*stride + u - pad, j*stride + v - pad]
// with zeros outside the image. Backward: dx is the transposed convolution of dy with w; dw is
// the correlation of x with dy. The CPU version lowers each image to a matrix (im2col) and
// multiplies with sgemm, images in parallel.
#pragma once
#include "tensor/random.h"  // QNN_HOST_DEVICE
#include "tensor/tensor.h"

namespace qnn {

struct ConvParams {
  int stride = 1;
  int padding = 0;
};

// Output spatial size for input size `in` and kernel size `k`.
inline int64_t conv_out_size(int64_t in, int64_t k, ConvParams p) {
  return (in + 2 * p.padding - k) / p.stride + 1;
}

// The form of the weight the GPU's convolution multiplies beside images of this element type and
// memory format: the images' type, and KRSC order (a channels-last [O, C, KH, KW] tensor; see
// tensor/conv.cu) beside channels-last images through cuDNN unless backend_options().krsc_filters
// is off, else [O, C, KH, KW] row-major. (The CPU multiplies float32 row-major weights.)
struct WeightForm {
  DType dtype = DType::f32;
  MemoryFormat format = MemoryFormat::contiguous;
};
WeightForm conv2d_weight_form(DType images, MemoryFormat images_format);

// The weight w [O, C, KH, KW] in the form the convolution of images like x multiplies: w itself on
// the CPU, and where it already is in that form (and 16-byte aligned); else a converted copy. The
// functions below take either w or this form; an op that runs forward and backward with one
// weight makes it once and passes it to both.
Tensor conv2d_weight_for(const Tensor& x, const Tensor& w);
// dw_form += dL/dw for the convolution of x without a bias, dw_form in the form conv2d_weight_form
// gives for x (on the GPU through cuDNN, which adds into it as it writes): a weight gradient that
// stays in cuDNN's form until it is folded into the float32 one (autograd/conv_weight_forms.h).
void conv2d_backward_weight_into_form(const Tensor& x, const Tensor& dy, Tensor& dw_form, ConvParams p);

// Where element i of a row-major [O, C, KH, KW] weight (c channels, rs = KH * KW taps) lies in its
// KRSC form ([O, KH, KW, C] in memory).
QNN_HOST_DEVICE int64_t krsc_index(int64_t i, int64_t c, int64_t rs) {
  const int64_t o = i / (c * rs), rest = i % (c * rs);
  return (o * rs + rest % rs) * c + rest / rs;
}

// A model's convolution weights in their forms, in one buffer (autograd/conv_weight_forms.h). A
// segment is one weight: `numel` values at `flat_begin` of the flat parameter and gradient buffers
// ([O, C, KH, KW] row-major there) and at `form_begin` of the forms buffer (KRSC there when the
// forms are, with c channels and rs = KH * KW taps). `segments` is a GPU tensor holding them.
struct WeightFormSegment {
  int64_t flat_begin, form_begin, numel, c, rs;
};
// forms = the weights in forms' type, in KRSC order if `krsc`; form_grads = 0. One kernel, on the GPU.
void refresh_weight_forms(const Tensor& values, const Tensor& segments, int64_t count, bool krsc, Tensor& forms,
                          Tensor& form_grads);
// grads += form_grads, each value to its place in the flat gradient. One kernel, on the GPU.
void fold_weight_form_grads(Tensor& grads, const Tensor& segments, int64_t count, bool krsc, const Tensor& form_grads);

// x [N, C, H, W], w [O, C, KH, KW], bias [O] or undefined -> y [N, O, Ho, Wo].
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p);
// dy [N, O, Ho, Wo], w -> dx of shape x_shape.
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p);
// dx += conv2d_backward_data(dy, w, dx.shape(), p), bit for bit the same as add_into(dx, ...) on
// the CPU: on its stride-1 lowerings each value is added to dx as the kernel stores it, which saves
// the temporary and the pass over it (a ResNet block input's gradient gets the shortcut's first);
// on the GPU cuDNN adds it as it writes dx (its output blending, beta = 1).
void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p);
// Adds dL/dw into dw [O, C, KH, KW] and, when db is defined, dL/dbias into db [O].
void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p);

// The CUDA twins (tensor/conv.cu), called by the functions above for CUDA tensors, after the
// shapes are checked. They run through cuDNN (algorithms chosen once per shape and cached), or,
// with backend_options().cudnn off, through im2col + cuBLAS (tensor/conv_gemm.cu).
namespace cuda {
Tensor conv2d_weight_for(const Tensor& x, const Tensor& w);
void conv2d_backward_weight_into_form(const Tensor& x, const Tensor& dy, Tensor& dw_form, ConvParams p);
void refresh_weight_forms(const Tensor& values, const Tensor& segments, int64_t count, bool krsc, Tensor& forms,
                          Tensor& form_grads);  // tensor/conv_weight_forms.cu
void fold_weight_form_grads(Tensor& grads, const Tensor& segments, int64_t count, bool krsc, const Tensor& form_grads);
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p);
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p);
void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p);
void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p);
}  // namespace cuda

}  // namespace qnn
