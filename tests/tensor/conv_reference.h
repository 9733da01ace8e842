// A convolution in double precision for the tests of the float lowerings' faster variants
// (test_conv_bf16.cpp, test_winograd.cpp): output, input, weight and bias gradients, and beside
// each the sum of the absolute values of the products it adds, the scale against which a float
// sum's rounding error is measured.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace qnn {
namespace test {

// The three passes of a convolution in double, from given operands: y (with bias), dx, dw, db,
// and for each output the sum of the absolute values of its products (the scale of its float
// rounding error).
struct Reference {
  std::vector<double> y, y_abs, dx, dx_abs, dw, dw_abs, db;
};

inline Reference direct(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& dy, int s, int pad) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const int64_t o = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
  const int64_t ho = dy.shape()[2], wo = dy.shape()[3];
  Reference r;
  r.y.assign(dy.numel(), 0.0);
  r.y_abs.assign(dy.numel(), 0.0);
  r.dx.assign(x.numel(), 0.0);
  r.dx_abs.assign(x.numel(), 0.0);
  r.dw.assign(w.numel(), 0.0);
  r.dw_abs.assign(w.numel(), 0.0);
  r.db.assign(o, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          const int64_t out = ((b * o + oc) * ho + i) * wo + j;
          const double g = dy.data()[out];
          r.y[out] = bias.defined() ? bias.data()[oc] : 0.0;
          r.db[oc] += g;
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t yy = i * s + u - pad, xx = j * s + v - pad;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                const int64_t src = ((b * c + ch) * h + yy) * wd + xx;
                const int64_t tap = ((oc * c + ch) * kh + u) * kw + v;
                const double xv = x.data()[src], wv = w.data()[tap];
                r.y[out] += wv * xv;
                r.y_abs[out] += std::abs(wv * xv);
                r.dx[src] += wv * g;
                r.dx_abs[src] += std::abs(wv * g);
                r.dw[tap] += xv * g;
                r.dw_abs[tap] += std::abs(xv * g);
              }
        }
  return r;
}

}  // namespace test
}  // namespace qnn
