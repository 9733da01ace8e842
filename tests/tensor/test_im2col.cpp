// The shifted planes of tensor/im2col.h against their definition, written out here element by
// element, im2col against the im2col formula and col2im against its sums in the definition's
// order (bit for bit), over strides 1 to 3 (1 and 2 take the AVX-512
// path, 3 the portable one), padding 0 to 2, kernels 1 to 5 and widths from 1 to past two
// 16-float runs. The image sits inside a larger buffer of NaNs, so any read outside it (or a
// padding element not written as zero) shows up as a NaN in the result; col2im must leave the
// NaNs around the image untouched. The planes hold min(stride, kernel) row phases.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/im2col.h"

using namespace qnn;

namespace {

// x[c][y][x] or 0 in the padding.
float pixel(const ConvGeometry& g, const float* x, int64_t c, int64_t y, int64_t col) {
  return y < 0 || y >= g.h || col < 0 || col >= g.w ? 0.0f : x[(c * g.h + y) * g.w + col];
}

}  // namespace

TEST_CASE("im2col: shifted planes and im2col follow their definitions at every stride and padding") {
  int64_t checked = 0;
  for (int64_t c : {1, 3})
    for (int64_t h : {1, 2, 5, 8, 9, 16, 17, 33})
      for (int64_t extra : {0, 3, 7})
        for (int64_t k : {1, 2, 3, 5})
          for (int s = 1; s <= 3; ++s)
            for (int pad = 0; pad <= 2; ++pad) {
              const int64_t w = h + extra;
              if (h + 2 * pad < k || w + 2 * pad < k) continue;
              const ConvGeometry g = conv_geometry({1, c, h, w}, {2, c, k, k}, ConvParams{s, pad});
              // The image with 64 NaNs on either side.
              std::vector<float> buffer(static_cast<size_t>(g.image_in() + 128), std::nanf(""));
              float* x = buffer.data() + 64;
              for (int64_t i = 0; i < g.image_in(); ++i) x[i] = static_cast<float>(i % 89) - 40.0f;
              const int64_t rows = g.ho + (g.kh - 1) / s, phases = row_phases(g);
              REQUIRE(phases == std::min<int64_t>(s, k));
              std::vector<float> planes(static_cast<size_t>(shifted_planes_size(g)), -1.0f);
              shifted_planes(g, x, planes.data());
              int64_t wrong = 0;
              for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t v = 0; v < k; ++v)
                  for (int64_t ph = 0; ph < phases; ++ph)
                    for (int64_t r = 0; r < rows; ++r)
                      for (int64_t j = 0; j < g.wo; ++j) {
                        const float got = planes[(((ch * k + v) * phases + ph) * rows + r) * g.wo + j];
                        const float want = pixel(g, x, ch, r * s + ph - pad, j * s + v - pad);
                        wrong += !(got == want);  // a NaN counts as wrong
                      }
              std::vector<float> col(static_cast<size_t>(g.k() * g.p()), -1.0f);
              im2col(g, x, col.data());
              for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t u = 0; u < k; ++u)
                  for (int64_t v = 0; v < k; ++v)
                    for (int64_t i = 0; i < g.ho; ++i)
                      for (int64_t j = 0; j < g.wo; ++j) {
                        const float got = col[((ch * k + u) * k + v) * g.p() + i * g.wo + j];
                        wrong += !(got == pixel(g, x, ch, i * s + u - pad, j * s + v - pad));
                      }
              // col2im of a column matrix of distinct values, against its sums taken in the
              // order of the definition (rows (c, u, v), then output pixels): exactly equal.
              for (int64_t i = 0; i < g.k() * g.p(); ++i) col[i] = static_cast<float>(i % 83) * 0.37f - 11.0f;
              std::vector<float> sums(static_cast<size_t>(g.image_in()), 0.0f);
              for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t u = 0; u < k; ++u)
                  for (int64_t v = 0; v < k; ++v)
                    for (int64_t i = 0; i < g.ho; ++i)
                      for (int64_t j = 0; j < g.wo; ++j) {
                        const int64_t y = i * s + u - pad, xx = j * s + v - pad;
                        if (y >= 0 && y < h && xx >= 0 && xx < w)
                          sums[(ch * h + y) * w + xx] += col[((ch * k + u) * k + v) * g.p() + i * g.wo + j];
                      }
              for (int64_t i = 0; i < g.image_in(); ++i) x[i] = std::nanf("");
              col2im(g, col.data(), x);
              for (int64_t i = 0; i < g.image_in(); ++i) wrong += !(x[i] == sums[i]);
              for (int64_t i = -64; i < 0; ++i) wrong += !std::isnan(x[i]) + !std::isnan(x[g.image_in() - 1 - i]);
              INFO("c ", c, " ", h, "x", w, " kernel ", k, " stride ", s, " pad ", pad);
              CHECK(wrong == 0);
              ++checked;
            }
  CHECK(checked > 1000);
}
