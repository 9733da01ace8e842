// Fully connected layer kernels (PyTorch's Linear layout: weight [out, in]):
//   forward          y[N x out]   = x[N x in] * w^T + b
//   backward data    dx[N x in]   = dy[N x out] * w[out x in]
//   backward weight  dw[out x in] += dy^T * x,     db[out] += sum over rows of dy
// All three are one sgemm each (tensor/gemm.h); the bias gradient is a column sum in row order.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

// x [N, in], w [out, in], bias [out] or undefined -> y [N, out].
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias);
// dy [N, out], w [out, in] -> dx [N, in].
Tensor linear_backward_data(const Tensor& dy, const Tensor& w);
// Adds dL/dw into dw [out, in] and, when db is defined, dL/dbias into db [out].
void linear_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db);

// The CUDA twins (tensor/linear.cu): the same three products through cuBLAS, called by the
// functions above for CUDA tensors after the shapes are checked.
namespace cuda {
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias);
Tensor linear_backward_data(const Tensor& dy, const Tensor& w);
void linear_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db);
}  // namespace cuda

}  // namespace qnn
