// Convolution forward, backward-data and backward-weight against a direct seven-loop
// convolution written out here, over stride 1 and 2, padding 0 and 1, 1x1 and 3x3 kernels,
// with and without bias, at sizes that fit no tile evenly; plus a small case computed by hand, and
// the accumulating backward-data against backward-data then add_into, bit for bit.
#include <doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "tensor/conv.h"
#include "tensor/device.h"
#include "tensor/elementwise.h"

using namespace qnn;

namespace {

struct Naive {
  int64_t n, c, h, w, o, k, ho, wo;
  int s, pad;
  // Index of the input pixel read by output (i, j) at kernel tap (u, v), or -1 in the padding.
  int64_t source(int64_t b, int64_t ch, int64_t i, int64_t j, int64_t u, int64_t v) const {
    const int64_t y = i * s + u - pad, x = j * s + v - pad;
    if (y < 0 || y >= h || x < 0 || x >= w) return -1;
    return ((b * c + ch) * h + y) * w + x;
  }
};

void expect_close(const Tensor& got, const std::vector<double>& want) {
  REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got.data()[i] - want[i]));
  CHECK(worst < 1e-4);
}

void check_against_naive(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int s,
                         int pad, bool with_bias) {
  CAPTURE(n); CAPTURE(c); CAPTURE(h); CAPTURE(w); CAPTURE(o); CAPTURE(k); CAPTURE(s); CAPTURE(pad);
  CAPTURE(with_bias);
  const ConvParams p{s, pad};
  const Naive g{n, c, h, w, o, k, conv_out_size(h, k, p), conv_out_size(w, k, p), s, pad};
  const Tensor x = Tensor::uniform({n, c, h, w}, -1, 1, 11);
  const Tensor wt = Tensor::uniform({o, c, k, k}, -1, 1, 12);
  const Tensor bias = with_bias ? Tensor::uniform({o}, -1, 1, 13) : Tensor();
  const Tensor dy = Tensor::uniform({n, o, g.ho, g.wo}, -1, 1, 14);
  std::vector<double> y(n * o * g.ho * g.wo), dx(x.numel(), 0.0), dw(wt.numel(), 0.0), db(o, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < g.ho; ++i)
        for (int64_t j = 0; j < g.wo; ++j) {
          const int64_t out = ((b * o + oc) * g.ho + i) * g.wo + j;
          double sum = with_bias ? bias.data()[oc] : 0.0;
          db[oc] += dy.data()[out];
          for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t u = 0; u < k; ++u)
              for (int64_t v = 0; v < k; ++v) {
                const int64_t src = g.source(b, ch, i, j, u, v);
                if (src < 0) continue;
                const int64_t tap = ((oc * c + ch) * k + u) * k + v;
                sum += double(wt.data()[tap]) * x.data()[src];
                dx[src] += double(wt.data()[tap]) * dy.data()[out];
                dw[tap] += double(x.data()[src]) * dy.data()[out];
              }
          y[out] = sum;
        }
  expect_close(conv2d_forward(x, wt, bias, p), y);
  expect_close(conv2d_backward_data(dy, wt, x.shape(), p), dx);
  // backward_weight adds: start from ones and expect 1 + gradient.
  Tensor dw_got = Tensor::full(wt.shape(), 1.0f), db_got = with_bias ? Tensor::full({o}, 1.0f) : Tensor();
  conv2d_backward_weight(x, dy, dw_got, db_got, p);
  for (double& v : dw) v += 1.0;
  for (double& v : db) v += 1.0;
  expect_close(dw_got, dw);
  if (with_bias) expect_close(db_got, db);
}

}  // namespace

TEST_CASE("conv2d matches the direct convolution: strides, paddings, kernels, bias") {
  for (int64_t k : {1, 3})
    for (int s : {1, 2})
      for (int pad : {0, 1})
        for (bool bias : {false, true}) check_against_naive(3, 5, 9, 11, 7, k, s, pad, bias);
}

TEST_CASE("conv2d matches the direct convolution at tile-sized and larger shapes") {
  // ResNet stage 1's width at 32x32 through the direct lowering (16 -> 16 itself takes the
  // Winograd path, tested against its own bound in tests/tensor/test_winograd.cpp).
  check_against_naive(2, 16, 32, 32, 24, 3, 1, 1, true);
  check_against_naive(3, 16, 16, 16, 32, 3, 2, 1, false);  // downsampling
  check_against_naive(2, 3, 7, 5, 33, 3, 1, 1, true);      // 33 outputs: a partial row tile
  check_against_naive(1, 2, 4, 4, 1, 3, 1, 0, false);      // one output channel
  check_against_naive(2, 5, 17, 19, 9, 3, 1, 1, true);     // implicit im2col at odd sizes
  check_against_naive(2, 5, 33, 35, 9, 3, 2, 1, true);     // shifted planes, stride 2, odd sizes
  check_against_naive(2, 4, 40, 39, 6, 1, 2, 0, false);    // shifted planes, 1x1 stride 2
  check_against_naive(1, 3, 18, 20, 5, 3, 1, 0, true);     // shifted planes, no padding
}

TEST_CASE("conv2d matches the direct convolution for wide layers on small maps") {
  // Weight gradients of at least 64 x 1024 floats sum groups of images per product
  // (ImageNet's 7x7 and 14x14 stages): 3x3, strided 1x1 and plain 1x1 layers, one group per
  // thread and (13 images of 121 outputs, groups of 5) several.
  check_against_naive(3, 64, 7, 7, 128, 3, 1, 1, true);
  check_against_naive(3, 256, 9, 9, 256, 1, 2, 0, false);
  check_against_naive(2, 256, 7, 7, 256, 1, 1, 0, true);
  check_against_naive(13, 64, 11, 11, 128, 3, 1, 1, false);
  // 1x1 layers of 64 channels and up take the gemm tiles on x transposed for the weight
  // gradient: stride 1 and 2 (shifted planes), channels a multiple of 16 (register transposes)
  // or not, maps of 256 pixels and more (blocks of the reduction resumed) or fewer; a partial
  // above 4 MB on a small map takes the grouped tiles instead.
  check_against_naive(2, 64, 16, 16, 128, 1, 1, 0, true);
  check_against_naive(5, 72, 9, 11, 80, 1, 1, 0, false);
  check_against_naive(3, 64, 23, 17, 64, 1, 1, 0, true);
  check_against_naive(2, 64, 20, 20, 128, 1, 2, 0, false);
  check_against_naive(3, 68, 15, 13, 64, 1, 2, 0, true);
  check_against_naive(2, 1024, 7, 7, 1032, 1, 1, 0, false);
}

TEST_CASE("conv2d: known answer for a 3x3 image and a 2x2 kernel") {
  // x = [1 2 3; 4 5 6; 7 8 9], w = [1 0; 0 -1], no padding: y = x[i][j] - x[i+1][j+1] = -4 everywhere.
  const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = Tensor::from_vector({1, 0, 0, -1}, {1, 1, 2, 2});
  const Tensor b = Tensor::from_vector({0.5f}, {1});
  CHECK(conv2d_forward(x, w, b, {1, 0}).to_vector() == std::vector<float>{-3.5f, -3.5f, -3.5f, -3.5f});
  // dy = ones: dx[y][x] = (#outputs reading (y,x) with weight 1) - (# with weight -1).
  const Tensor dy = Tensor::full({1, 1, 2, 2}, 1.0f);
  CHECK(conv2d_backward_data(dy, w, x.shape(), {1, 0}).to_vector() ==
        std::vector<float>{1, 1, 0, 1, 0, -1, 0, -1, -1});
  // dw[u][v] = sum of the 2x2 window at offset (u, v): 12, 16, 24, 28; db = 4.
  Tensor dw = Tensor::zeros({1, 1, 2, 2}), db = Tensor::zeros({1});
  conv2d_backward_weight(x, dy, dw, db, {1, 0});
  CHECK(dw.to_vector() == std::vector<float>{12, 16, 24, 28});
  CHECK(db.item() == 4.0f);
}

TEST_CASE("conv2d: no input channels are empty sums, an empty batch gives empty results") {
  const Tensor b = Tensor::from_vector({0.5f, -2.0f, 3.0f}, {3});
  struct Bf16Off {
    ~Bf16Off() { backend_options().bf16 = false; }
  } restore;
  for (bool bf16 : {false, true}) {
    CAPTURE(bf16);
    backend_options().bf16 = bf16;
    const Tensor y = conv2d_forward(Tensor::zeros({2, 0, 5, 5}), Tensor::zeros({3, 0, 3, 3}), b, {1, 1});
    REQUIRE(y.shape() == Shape{2, 3, 5, 5});
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y.data()[i] == b.data()[i / 25 % 3]);  // the bias alone
    const Tensor dy = Tensor::full({2, 3, 5, 5}, 1.0f);
    CHECK(conv2d_backward_data(dy, Tensor::zeros({3, 0, 3, 3}), {2, 0, 5, 5}, {1, 1}).numel() == 0);
    Tensor dw = Tensor::zeros({3, 0, 3, 3}), db = Tensor::zeros({3});
    conv2d_backward_weight(Tensor::zeros({2, 0, 5, 5}), dy, dw, db, {1, 1});
    CHECK(db.to_vector() == std::vector<float>{50, 50, 50});

    const Tensor w = Tensor::uniform({3, 4, 3, 3}, -1, 1, 5);
    const Tensor empty = conv2d_forward(Tensor::zeros({0, 4, 5, 5}), w, b, {1, 1});
    CHECK(empty.shape() == Shape{0, 3, 5, 5});
    CHECK(conv2d_backward_data(empty, w, {0, 4, 5, 5}, {1, 1}).shape() == Shape{0, 4, 5, 5});
    Tensor dw4 = Tensor::full({3, 4, 3, 3}, 1.0f), db4 = Tensor::full({3}, 1.0f);
    conv2d_backward_weight(Tensor::zeros({0, 4, 5, 5}), empty, dw4, db4, {1, 1});  // adds nothing
    CHECK(dw4.to_vector() == std::vector<float>(108, 1.0f));
    CHECK(db4.to_vector() == std::vector<float>{1, 1, 1});
  }
}

TEST_CASE("conv2d: shape errors name what was expected") {
  const Tensor x = Tensor::zeros({1, 3, 8, 8}), w = Tensor::zeros({4, 2, 3, 3});
  CHECK_THROWS_AS(conv2d_forward(x, w, Tensor(), {1, 1}), Error);
  CHECK_THROWS_AS(conv2d_backward_data(Tensor::zeros({1, 4, 5, 5}), Tensor::zeros({4, 3, 3, 3}),
                                       x.shape(), {1, 1}), Error);
}

TEST_CASE("conv2d: repeated runs give bit-identical results") {
  const Tensor x = Tensor::uniform({9, 16, 16, 16}, -1, 1, 21), w = Tensor::uniform({32, 16, 3, 3}, -1, 1, 22);
  const Tensor dy = Tensor::uniform({9, 32, 8, 8}, -1, 1, 23);
  Tensor dw1 = Tensor::zeros(w.shape()), dw2 = Tensor::zeros(w.shape()), db;
  conv2d_backward_weight(x, dy, dw1, db, {2, 1});
  conv2d_backward_weight(x, dy, dw2, db, {2, 1});
  CHECK(dw1.to_vector() == dw2.to_vector());
  CHECK(conv2d_forward(x, w, Tensor(), {2, 1}).to_vector() == conv2d_forward(x, w, Tensor(), {2, 1}).to_vector());
}

// conv2d_backward_data_add must equal add_into(dx, conv2d_backward_data(...)) bit for bit on every
// lowering: 32x32 rows straight into dx, 16x16 on the wide grid, 8x8 shifted planes, 1x1 direct,
// and the strided col2im path (which adds a temporary).
TEST_CASE("conv2d_backward_data_add is bit-identical to add_into of conv2d_backward_data") {
  struct Case {
    int64_t n, c, h, o, k;
    int stride, pad;
  };
  for (const Case& t : {Case{3, 5, 32, 6, 3, 1, 1}, Case{3, 4, 16, 9, 3, 1, 1}, Case{2, 7, 8, 5, 3, 1, 1},
                        Case{2, 6, 10, 4, 1, 1, 0}, Case{2, 3, 9, 4, 3, 2, 1}}) {
    INFO("n ", t.n, " c ", t.c, " h ", t.h, " o ", t.o, " k ", t.k, " stride ", t.stride, " pad ", t.pad);
    const ConvParams p{t.stride, t.pad};
    const int64_t out = conv_out_size(t.h, t.k, p);
    const Tensor w = Tensor::normal({t.o, t.c, t.k, t.k}, 0.0f, 0.3f, 71);
    const Tensor dy = Tensor::normal({t.n, t.o, out, out}, 0.0f, 1.0f, 72);
    const Tensor start = Tensor::normal({t.n, t.c, t.h, t.h}, 0.0f, 1.0f, 73);
    Tensor expected = start.clone();
    add_into(expected, conv2d_backward_data(dy, w, start.shape(), p));
    Tensor got = start.clone();
    conv2d_backward_data_add(dy, w, got, p);
    REQUIRE(got.shape() == expected.shape());
    CHECK(std::memcmp(got.data(), expected.data(), got.numel() * sizeof(float)) == 0);
  }
}
