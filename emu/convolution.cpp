// The arithmetic of the emulated cuDNN convolutions (see emu/convolution.h).
#include "emu/convolution.h"

#include <cstdint>
#include <vector>

namespace qnn_emu {

namespace {

float blend(double sum, float alpha, float beta, float old) {
  return beta == 0.0f ? float(alpha * sum) : float(alpha * sum + double(beta) * old);
}

// [n, c, hw] <-> [n, hw, c].
std::vector<float> nhwc_to_nchw(const float* src, int n, int c, int hw) {
  std::vector<float> out(size_t(n) * c * hw);
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < hw; ++p)
      for (int k = 0; k < c; ++k) out[(size_t(i) * c + k) * hw + p] = src[(size_t(i) * hw + p) * c + k];
  return out;
}
void nchw_to_nhwc(const std::vector<float>& src, float* dst, int n, int c, int hw) {
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < hw; ++p)
      for (int k = 0; k < c; ++k) dst[(size_t(i) * hw + p) * c + k] = src[(size_t(i) * c + k) * hw + p];
}

// Runs `nchw(g, in, out)` on NCHW copies of an NHWC input (in_c channels of in_hw pixels) and
// output (out_c of out_hw), the output's old values included where they are blended (beta != 0).
template <class F>
void through_nchw(const Shapes& g, const float* in, int in_c, int in_hw, float* out, int out_c, int out_hw,
                  bool blend, F nchw) {
  Shapes plain = g;
  plain.nhwc = false;
  const std::vector<float> a = nhwc_to_nchw(in, g.n, in_c, in_hw);
  std::vector<float> b = blend ? nhwc_to_nchw(out, g.n, out_c, out_hw)
                               : std::vector<float>(size_t(g.n) * out_c * out_hw);
  nchw(plain, a.data(), b.data());
  nchw_to_nhwc(b, out, g.n, out_c, out_hw);
}

// The same convolution with its filter reordered from KRSC to KCRS ([k, rs, c] to [k, c, rs]).
Shapes with_kcrs(const Shapes& g) {
  Shapes kcrs = g;
  kcrs.krsc = false;
  return kcrs;
}

}  // namespace

// The three directions below visit every (output pixel, filter tap) pair that reads an input
// pixel, with the inner loop along an output row; each output's terms are summed in double, in a
// fixed order, so results do not depend on the number of threads.
void convolution_forward(const Shapes& g, float alpha, const float* x, const float* w, float beta, float* y) {
  if (g.krsc) {
    const std::vector<float> kcrs = nhwc_to_nchw(w, g.k, g.c, g.r * g.s);
    return convolution_forward(with_kcrs(g), alpha, x, kcrs.data(), beta, y);
  }
  if (g.nhwc)
    return through_nchw(g, x, g.c, g.h * g.w, y, g.k, g.ho * g.wo, beta != 0.0f,
                        [&](const Shapes& p, const float* a, float* b) {
                          convolution_forward(p, alpha, a, w, beta, b);
                        });
#pragma omp parallel for collapse(2)
  for (int n = 0; n < g.n; ++n)
    for (int k = 0; k < g.k; ++k) {
      std::vector<double> sum(size_t(g.ho) * g.wo, 0.0);
      for (int c = 0; c < g.c; ++c)
        for (int i = 0; i < g.r; ++i)
          for (int j = 0; j < g.s; ++j) {
            const double tap = w[((int64_t(k) * g.c + c) * g.r + i) * g.s + j];
            int begin, end;
            g.valid_cols(j, begin, end);
            for (int oy = 0; oy < g.ho; ++oy) {
              const int iy = g.input_row(oy, i);
              if (iy < 0 || iy >= g.h) continue;
              const float* row = x + ((int64_t(n) * g.c + c) * g.h + iy) * g.w;
              double* out = sum.data() + size_t(oy) * g.wo;
              if (g.conv->stride_w == 1) {  // contiguous: the loop vectorises
                const float* in = row + g.input_col(0, j);
                for (int ox = begin; ox < end; ++ox) out[ox] += tap * in[ox];
              } else {
                for (int ox = begin; ox < end; ++ox) out[ox] += tap * row[g.input_col(ox, j)];
              }
            }
          }
      float* yk = y + (int64_t(n) * g.k + k) * g.ho * g.wo;
      for (size_t p = 0; p < sum.size(); ++p) yk[p] = blend(sum[p], alpha, beta, yk[p]);
    }
}

void convolution_backward_data(const Shapes& g, float alpha, const float* w, const float* dy, float beta, float* dx) {
  if (g.krsc) {
    const std::vector<float> kcrs = nhwc_to_nchw(w, g.k, g.c, g.r * g.s);
    return convolution_backward_data(with_kcrs(g), alpha, kcrs.data(), dy, beta, dx);
  }
  if (g.nhwc)
    return through_nchw(g, dy, g.k, g.ho * g.wo, dx, g.c, g.h * g.w, beta != 0.0f,
                        [&](const Shapes& p, const float* a, float* b) {
                          convolution_backward_data(p, alpha, w, a, beta, b);
                        });
#pragma omp parallel for collapse(2)
  for (int n = 0; n < g.n; ++n)
    for (int c = 0; c < g.c; ++c) {
      std::vector<double> sum(size_t(g.h) * g.w, 0.0);
      for (int k = 0; k < g.k; ++k)
        for (int i = 0; i < g.r; ++i)
          for (int j = 0; j < g.s; ++j) {
            const double tap = w[((int64_t(k) * g.c + c) * g.r + i) * g.s + j];
            int begin, end;
            g.valid_cols(j, begin, end);
            for (int oy = 0; oy < g.ho; ++oy) {
              const int iy = g.input_row(oy, i);
              if (iy < 0 || iy >= g.h) continue;
              const float* grad = dy + ((int64_t(n) * g.k + k) * g.ho + oy) * g.wo;
              double* in = sum.data() + size_t(iy) * g.w;
              if (g.conv->stride_w == 1) {
                double* at = in + g.input_col(0, j);
                for (int ox = begin; ox < end; ++ox) at[ox] += tap * grad[ox];
              } else {
                for (int ox = begin; ox < end; ++ox) in[g.input_col(ox, j)] += tap * grad[ox];
              }
            }
          }
      float* dxc = dx + (int64_t(n) * g.c + c) * g.h * g.w;
      for (size_t p = 0; p < sum.size(); ++p) dxc[p] = blend(sum[p], alpha, beta, dxc[p]);
    }
}

void convolution_backward_filter(const Shapes& g, float alpha, const float* x, const float* dy, float beta, float* dw) {
  if (g.krsc) {
    const int rs = g.r * g.s;
    std::vector<float> kcrs = beta != 0.0f ? nhwc_to_nchw(dw, g.k, g.c, rs) : std::vector<float>(size_t(g.k) * g.c * rs);
    convolution_backward_filter(with_kcrs(g), alpha, x, dy, beta, kcrs.data());
    return nchw_to_nhwc(kcrs, dw, g.k, g.c, rs);
  }
  if (g.nhwc) {
    Shapes plain = g;
    plain.nhwc = false;
    const std::vector<float> a = nhwc_to_nchw(x, g.n, g.c, g.h * g.w), b = nhwc_to_nchw(dy, g.n, g.k, g.ho * g.wo);
    return convolution_backward_filter(plain, alpha, a.data(), b.data(), beta, dw);
  }
#pragma omp parallel for collapse(2)
  for (int k = 0; k < g.k; ++k)
    for (int c = 0; c < g.c; ++c)
      for (int i = 0; i < g.r; ++i)
        for (int j = 0; j < g.s; ++j) {
          int begin, end;
          g.valid_cols(j, begin, end);
          double sum = 0, lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 8 partial sums, added in order at the end
          for (int n = 0; n < g.n; ++n)
            for (int oy = 0; oy < g.ho; ++oy) {
              const int iy = g.input_row(oy, i);
              if (iy < 0 || iy >= g.h) continue;
              const float* row = x + ((int64_t(n) * g.c + c) * g.h + iy) * g.w;
              const float* grad = dy + ((int64_t(n) * g.k + k) * g.ho + oy) * g.wo;
              int ox = begin;
              if (g.conv->stride_w == 1) {
                const float* in = row + g.input_col(0, j);
                for (; ox + 8 <= end; ox += 8)
                  for (int v = 0; v < 8; ++v) lanes[v] += double(grad[ox + v]) * in[ox + v];
              }
              for (; ox < end; ++ox) sum += double(grad[ox]) * row[g.input_col(ox, j)];
            }
          for (double lane : lanes) sum += lane;
          float& out = dw[((int64_t(k) * g.c + c) * g.r + i) * g.s + j];
          out = blend(sum, alpha, beta, out);
        }
}

}  // namespace qnn_emu
