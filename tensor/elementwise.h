// Element-wise kernels on same-shaped tensors (no broadcasting), and the whole-tensor sum.
//   add: y = a + b      sub: y = a - b      mul: y = a * b      scale: y = s * a
//   relu: y = max(a, 0)      add_relu: y = max(a + b, 0)
//   relu_backward: dx = dy where y > 0, else 0 (y is relu's output, so no input is needed)
//   add_into: dst += src (in place; element counts must match)      add_scalar: dst += value
//   sum_all: sum_i x_i, accumulated in double in a fixed order, so the result is the same for any
//   number of threads.
// These know nothing of autograd (autograd/functions_elementwise.cpp wraps them). Each output is
// a fresh tensor; loops are single passes that the compiler vectorises, split across threads
// (static schedule) when the tensor is large enough to pay for it.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, float s);
Tensor relu(const Tensor& a);
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor relu_backward(const Tensor& dy, const Tensor& y);

void add_into(Tensor& dst, const Tensor& src);
void add_scalar(Tensor& dst, float value);

double sum_all(const Tensor& x);

// The CUDA twins (tensor/elementwise.cu), called by the functions above for CUDA tensors. The
// sum is deterministic there too: fixed blocks reduced in a fixed tree, then in block order.
namespace cuda {
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, float s);
Tensor relu(const Tensor& a);
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor relu_backward(const Tensor& dy, const Tensor& y);
void add_into(Tensor& dst, const Tensor& src);
void add_scalar(Tensor& dst, float value);
double sum_all(const Tensor& x);
}  // namespace cuda

}  // namespace qnn
