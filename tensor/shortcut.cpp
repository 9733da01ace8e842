// CPU option-A shortcut: a strided copy into the middle channels (see tensor/shortcut.h). The
// checks run before a CUDA tensor is sent to its twin (tensor/shortcut.cu) and read no elements,
// so bf16 tensors (GPU only) pass through them; the CPU loops are float only.
#include "tensor/shortcut.h"

#include <cstring>

#include "tensor/device.h"

namespace qnn {

namespace {

struct ShortcutGeometry {
  int64_t n, c, h, w, out_c, ho, wo, before;
};

ShortcutGeometry geometry(const char* op, const Shape& x, int64_t out_channels, int stride) {
  if (x.size() != 4) throw Error(str("[", op, "] expected x of shape [N, C, H, W], got ", shape_str(x)));
  if (stride < 1) throw Error(str("[", op, "] stride must be >= 1, got ", stride));
  if (out_channels < x[1])
    throw Error(str("[", op, "] out_channels ", out_channels, " is fewer than the input's ", x[1],
                    " channels (x ", shape_str(x), ")"));
  return {x[0], x[1], x[2], x[3], out_channels, (x[2] + stride - 1) / stride,
          (x[3] + stride - 1) / stride, (out_channels - x[1]) / 2};
}

}  // namespace

Tensor shortcut_pad_forward(const Tensor& x, int64_t out_channels, int stride) {
  const ShortcutGeometry g = geometry("shortcut_pad", x.shape(), out_channels, stride);
  QNN_ON_CUDA(x, cuda::shortcut_pad_forward(x, out_channels, stride));
  Tensor y({g.n, g.out_c, g.ho, g.wo}, x.device());
  const int64_t plane = g.ho * g.wo;
#pragma omp parallel for schedule(static) if (g.n * g.out_c * plane >= 32768)
  for (int64_t q = 0; q < g.n * g.out_c; ++q) {
    const int64_t img = q / g.out_c, c = q % g.out_c - g.before;
    float* out = y.data() + q * plane;
    if (c < 0 || c >= g.c) {
      std::memset(out, 0, plane * sizeof(float));
      continue;
    }
    const float* in = x.data() + (img * g.c + c) * g.h * g.w;
    for (int64_t i = 0; i < g.ho; ++i)
      for (int64_t j = 0; j < g.wo; ++j) out[i * g.wo + j] = in[i * stride * g.w + j * stride];
  }
  return y;
}

Tensor shortcut_pad_backward(const Tensor& dy, const Shape& x_shape, int stride) {
  QNN_CHECK(dy.dim() == 4, "expected output gradient [N, C, H, W], got ", shape_str(dy.shape()));
  const ShortcutGeometry g = geometry("shortcut_pad_backward", x_shape, dy.size(1), stride);
  QNN_CHECK(dy.shape() == Shape({g.n, g.out_c, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.out_c, g.ho, g.wo}));
  QNN_ON_CUDA(dy, cuda::shortcut_pad_backward(dy, x_shape, stride));
  Tensor dx = Tensor::zeros(x_shape, dy.device());
  const int64_t plane = g.ho * g.wo;
#pragma omp parallel for schedule(static) if (dx.numel() >= 32768)
  for (int64_t q = 0; q < g.n * g.c; ++q) {
    const int64_t img = q / g.c, c = q % g.c;
    const float* in = dy.data() + (img * g.out_c + g.before + c) * plane;
    float* out = dx.data() + q * g.h * g.w;
    for (int64_t i = 0; i < g.ho; ++i)
      for (int64_t j = 0; j < g.wo; ++j) out[i * stride * g.w + j * stride] = in[i * g.wo + j];
  }
  return dx;
}

}  // namespace qnn
