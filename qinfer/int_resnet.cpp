// Running the integer CIFAR ResNet (see qinfer/int_resnet.h): the stem on the raw pixels, the
// residual blocks as u8 convolutions requantized in their epilogues, the pooling and the
// classifier. qinfer/int_resnet_load.cpp builds the network from a QAT export.
#include "qinfer/int_resnet.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <omp.h>

#include "qinfer/conv_direct.h"
#include "qinfer/stem.h"

namespace qnn::qinfer {

namespace {

Requant requant_of(const IntConv& c) {
  Requant rq;
  rq.offset = c.offset.data();
  rq.multiplier = c.multiplier.data();
  rq.bias = c.bias.data();
  rq.zero_point = c.out.zero_point;
  rq.lo = c.out.zero_point;  // the ReLU: real 0
  rq.hi = c.out.qmax;
  return rq;
}

}  // namespace

int64_t IntResNet::weight_bytes() const {
  int64_t bytes = stem_weights_.bytes() + stem_rgb_weights_.bytes() + int64_t(fc_weight_.size());
  for (const IntBlock& b : blocks_) bytes += b.conv1.weights.bytes() + b.conv2.weights.bytes();
  return bytes;
}

void IntResNet::stem(const uint8_t* pixels, int64_t n, int64_t h, int64_t w, uint8_t* out) const {
  const int64_t ci = stem_shape_.in_channels, co = stem_shape_.out_channels / ci, k = stem_shape_.kernel,
                pad = stem_shape_.padding, k1 = k + 1;
  const int64_t oh_n = stem_shape_.out_size(h), ow_n = stem_shape_.out_size(w);
  StemRequant rq;
  rq.in_channels = ci;
  rq.out_channels = co;
  rq.pixel_scale = pixel_scale_.data();
  rq.multiplier = stem_multiplier_.data();
  rq.bias = stem_bias_.data();
  rq.zero_point = stem_out_.zero_point;
  rq.qmax = stem_out_.qmax;
  // Padding taps hold pixel 0 and are left out of the zero-point correction instead.
  // Each position's correction (the position's (oh, ow) stepped along, not divided out), then
  // the positions of the tile requantized in one call.
  const AccumulatorConsumer requantize = [&](int64_t m0, int64_t rows, const int32_t* acc) {
    thread_local std::vector<const float*> corrections;
    corrections.resize(size_t(rows));
    int64_t oh = (m0 / ow_n) % oh_n, ow = m0 % ow_n;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t h0 = std::max<int64_t>(0, pad - oh), h1 = std::min<int64_t>(k, h + pad - oh);
      const int64_t w0 = std::max<int64_t>(0, pad - ow), w1 = std::min<int64_t>(k, w + pad - ow);
      corrections[i] = stem_correction_.data() + (((h0 * k1 + h1) * k1 + w0) * k1 + w1) * co;
      if (++ow == ow_n) {
        ow = 0;
        if (++oh == oh_n) oh = 0;
      }
    }
    stem_requantize_positions(acc, rows, corrections.data(), rq, out + m0 * co);
  };
  // The direct convolution where it runs (qinfer/conv.h's choice), else im2col + GEMM: the same
  // accumulators.
  if (!stem_rgb_weights_.data.empty() && conv_algorithm() == ConvAlgorithm::Auto && active_gemm_path() == GemmPath::Vnni)
    conv2d_rgb_s32_direct(pixels, n, h, w, stem_shape_, 0, stem_rgb_weights_, requantize);
  else
    conv2d_u8_s32_tiles(pixels, n, h, w, stem_shape_, 0, stem_weights_, requantize);
}

std::vector<float> IntResNet::run(const uint8_t* pixels, int64_t n, int64_t h, int64_t w, const Trace& trace) const {
  QNN_CHECK(n > 0 && h > 0 && w > 0, "IntResNet: empty input ", n, " x ", h, " x ", w);
  int64_t c = stem_shape_.out_channels / stem_shape_.in_channels;
  // Buffers kept between calls (per calling thread), so a forward pass allocates and clears
  // nothing. Local references: inside the OpenMP regions below they name the caller's buffers
  // (a thread_local named there would be each worker's own).
  struct Buffers {
    std::vector<uint8_t> x, mid, y, shortcut;
  };
  thread_local Buffers buffers;
  std::vector<uint8_t> &x = buffers.x, &mid = buffers.mid, &y = buffers.y, &shortcut = buffers.shortcut;
  x.resize(n * h * w * c);
  stem(pixels, n, h, w, x.data());
  if (trace.stem) *trace.stem = x;
  for (const IntBlock& block : blocks_) {
    const IntConv &c1 = block.conv1, &c2 = block.conv2;
    const int64_t oh = c1.shape.out_size(h), ow = c1.shape.out_size(w), oc = c2.shape.out_channels,
                  positions = n * oh * ow, stride = c1.shape.stride;
    mid.resize(positions * c1.shape.out_channels);
    conv2d_u8(x.data(), n, h, w, c1.shape, uint8_t(c1.in.zero_point), c1.weights, requant_of(c1), mid.data());
    Requant rq = requant_of(c2);
    rq.residual_zero = c1.in.zero_point;
    rq.residual_multiplier = block.residual_multiplier;
    if (stride == 1 && c == oc) {
      rq.residual = x.data();
      rq.residual_ld = c;
    } else {
      // Option A: the input subsampled by the stride, its channels in the middle, the zero point elsewhere.
      shortcut.resize(positions * oc);
      const uint8_t zero = uint8_t(c1.in.zero_point);
      const int64_t before = block.pad_before, after = oc - c - before;
#pragma omp parallel for schedule(static) if (positions >= 256)
      for (int64_t m = 0; m < positions; ++m) {
        const int64_t img = m / (oh * ow), i = (m / ow) % oh, j = m % ow;
        const uint8_t* src = x.data() + ((img * h + i * stride) * w + j * stride) * c;
        uint8_t* dst = shortcut.data() + m * oc;
        std::memset(dst, zero, size_t(before));
        std::memcpy(dst + before, src, size_t(c));
        std::memset(dst + before + c, zero, size_t(after));
      }
      rq.residual = shortcut.data();
      rq.residual_ld = oc;
    }
    y.resize(positions * oc);
    conv2d_u8(mid.data(), n, oh, ow, c2.shape, uint8_t(c2.in.zero_point), c2.weights, rq, y.data());
    std::swap(x, y);
    h = oh;
    w = ow;
    c = oc;
  }
  // Average pool into the classifier's grid, then the classifier.
  const ActivationGrid& last = blocks_.back().conv2.out;
  const int64_t hw = h * w;
  const float pool_multiplier = float(double(last.scale) / (double(hw) * double(head_in_.scale)));
  std::vector<uint8_t> features(n * c);  // the classifier's input codes
  std::vector<float> logits(n * classes_);
#pragma omp parallel for schedule(static) if (n >= 16)
  for (int64_t img = 0; img < n; ++img) {
    std::vector<int32_t> sum(c, 0);
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t ch = 0; ch < c; ++ch) sum[ch] += x[(img * hw + p) * c + ch];
    uint8_t* feat = features.data() + img * c;
    for (int64_t ch = 0; ch < c; ++ch) {
      float v = float(sum[ch] - int32_t(hw) * last.zero_point) * pool_multiplier;
      v = std::min(std::max(v, -1073741824.0f), 1073741824.0f);
      const int32_t q = int32_t(std::nearbyint(v)) + head_in_.zero_point;
      feat[ch] = uint8_t(std::min(std::max(q, int32_t(0)), head_in_.qmax));
    }
    for (int64_t j = 0; j < classes_; ++j) {
      int32_t a = 0;
      for (int64_t i = 0; i < c; ++i) a += int32_t(feat[i]) * int32_t(fc_weight_[j * c + i]);
      logits[img * classes_ + j] = std::fma(float(a - head_in_.zero_point * fc_sums_[j]), fc_scale_[j], fc_bias_[j]);
    }
  }
  return logits;
}

std::vector<float> IntResNet::forward_pixels(const uint8_t* pixels, int64_t n, int64_t h, int64_t w) const {
  // A large batch: each thread runs whole chunks of images through the network, so a chunk's
  // activations stay in its core's cache from layer to layer and no layer waits on the others.
  // A small one: the layers split their output rows over the threads.
  constexpr int64_t kChunk = 8;
  if (omp_in_parallel() || n < 2 * kChunk * omp_get_max_threads()) return run(pixels, n, h, w, Trace{});
  std::vector<float> logits(n * classes_);
  const int64_t image = h * w * stem_shape_.in_channels, chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t first = i * kChunk, count = std::min(kChunk, n - first);
    const std::vector<float> part = run(pixels + first * image, count, h, w, Trace{});
    std::copy(part.begin(), part.end(), logits.begin() + first * classes_);
  }
  return logits;
}

std::vector<uint8_t> IntResNet::stem_pixels(const uint8_t* pixels, int64_t n, int64_t h, int64_t w) const {
  std::vector<uint8_t> out;
  Trace t;
  t.stem = &out;
  run(pixels, n, h, w, t);
  return out;
}

std::vector<uint8_t> IntResNet::pixels_of(const Tensor& images) const {
  const int64_t ci = stem_shape_.in_channels;
  QNN_CHECK(images.dim() == 4 && images.size(1) == ci, "IntResNet: expected images [N, ", ci, ", H, W], got ",
            shape_str(images.shape()));
  const Tensor cpu = images.to(Device::CPU);
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  const float* src = cpu.data();
  std::vector<uint8_t> out(n * h * w * ci);
  // (p/255 - mean) / std back to p: x * 255 std + 255 mean is within 1e-3 of the byte for images
  // normalised from bytes, so rounding recovers it exactly.
  std::vector<float> a(ci), b(ci);
  for (int64_t c = 0; c < ci; ++c) {
    a[c] = float(255.0 * double(norm_.stddev[c]));
    b[c] = float(255.0 * double(norm_.mean[c]));
  }
  // Channel by channel into a row of bytes, then interleaved into NHWC (both loops vectorize).
#pragma omp parallel for schedule(static) if (n >= 8)
  for (int64_t img = 0; img < n; ++img) {
    std::vector<uint8_t> plane(size_t(h * w));
    for (int64_t c = 0; c < ci; ++c) {
      const float* x = src + (img * ci + c) * h * w;
      for (int64_t p = 0; p < h * w; ++p)
        plane[p] = uint8_t(std::min(255.0f, std::max(0.0f, std::nearbyint(std::fma(x[p], a[c], b[c])))));
      uint8_t* o = out.data() + img * h * w * ci + c;
      for (int64_t p = 0; p < h * w; ++p) o[p * ci] = plane[p];
    }
  }
  return out;
}

Tensor IntResNet::forward(const Tensor& images) const {
  const std::vector<uint8_t> pixels = pixels_of(images);
  const std::vector<float> logits = forward_pixels(pixels.data(), images.size(0), images.size(2), images.size(3));
  return Tensor::from_vector(logits, {images.size(0), classes_});
}

}  // namespace qnn::qinfer
