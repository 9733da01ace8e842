// CPU fully connected kernels: three sgemm calls and a column sum (see tensor/linear.h).
#include "tensor/linear.h"

#include "tensor/device.h"
#include "tensor/gemm.h"

namespace qnn {

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  QNN_CHECK(x.dim() == 2 && w.dim() == 2, "expected input [N, in] and weight [out, in], got input ",
            shape_str(x.shape()), " and weight ", shape_str(w.shape()));
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  QNN_CHECK(w.size(1) == in, "input ", shape_str(x.shape()), " has ", in, " features, weight ",
            shape_str(w.shape()), " expects ", w.size(1));
  QNN_CHECK(!bias.defined() || bias.shape() == Shape({out}), "bias ", shape_str(bias.shape()),
            " for ", out, " outputs, expected [", out, "]");
  QNN_ON_CUDA(x, cuda::linear_forward(x, w, bias));
  Tensor y({n, out}, x.device());
  float* py = y.data();
  if (bias.defined()) {
    const float* pb = bias.data();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t o = 0; o < out; ++o) py[r * out + o] = pb[o];
  }
  sgemm(false, true, n, out, in, 1.0f, x.data(), in, w.data(), in, bias.defined() ? 1.0f : 0.0f,
        py, out);
  return y;
}

Tensor linear_backward_data(const Tensor& dy, const Tensor& w) {
  QNN_CHECK(dy.dim() == 2 && w.dim() == 2 && dy.size(1) == w.size(0), "output gradient ",
            shape_str(dy.shape()), " does not match weight ", shape_str(w.shape()));
  QNN_ON_CUDA(dy, cuda::linear_backward_data(dy, w));
  const int64_t n = dy.size(0), out = w.size(0), in = w.size(1);
  Tensor dx({n, in}, dy.device());
  sgemm(false, false, n, in, out, 1.0f, dy.data(), out, w.data(), in, 0.0f, dx.data(), in);
  return dx;
}

void linear_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  QNN_CHECK(x.dim() == 2 && dy.dim() == 2 && x.size(0) == dy.size(0) &&
                dw.shape() == Shape({dy.size(1), x.size(1)}),
            "input ", shape_str(x.shape()), ", output gradient ", shape_str(dy.shape()),
            " and weight gradient ", shape_str(dw.shape()), " do not fit together");
  QNN_CHECK(!db.defined() || db.numel() == dy.size(1), "bias gradient ", shape_str(db.shape()), " for ",
            dy.size(1), " outputs");
  QNN_ON_CUDA(x, cuda::linear_backward_weight(x, dy, dw, db));
  const int64_t n = x.size(0), in = x.size(1), out = dy.size(1);
  sgemm(true, false, out, in, n, 1.0f, dy.data(), out, x.data(), in, 1.0f, dw.data(), in);
  if (db.defined()) {
    float* pdb = db.data();
    const float* pdy = dy.data();
    for (int64_t r = 0; r < n; ++r)
#pragma omp simd
      for (int64_t o = 0; o < out; ++o) pdb[o] += pdy[r * out + o];
  }
}

}  // namespace qnn
