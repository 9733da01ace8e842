// Quantization ranges and granularity (see qat/quant_range.h).
#include "qat/quant_range.h"

namespace qnn {

QuantRange quant_range(int bits, bool is_signed) {
  QNN_CHECK(bits >= 2 && bits <= 8, "bits must be 2 to 8, found ", bits);
  const int64_t levels = int64_t(1) << bits;
  return is_signed ? QuantRange{-levels / 2, levels / 2 - 1} : QuantRange{0, levels - 1};
}

void check_quant_range(const char* op, QuantRange range) {
  if (!(range.qmin <= 0 && range.qmax >= 0))
    throw Error(str("[", op, "] the quantization range must contain 0 (qmin <= 0 <= qmax), found [",
                    range.qmin, ", ", range.qmax, "]"));
  if (range.levels() < 3 || range.levels() > 256)
    throw Error(str("[", op, "] the quantization range must hold 3 to 256 levels (2 to 8 bits), found [",
                    range.qmin, ", ", range.qmax, "] with ", range.levels()));
}

const char* granularity_name(Granularity granularity) {
  return granularity == Granularity::PerTensor ? "per tensor" : "per channel";
}

int64_t qparam_count(const char* op, const Tensor& x, Granularity granularity) {
  if (granularity == Granularity::PerTensor) return 1;
  if (x.dim() < 1 || x.size(0) < 1)
    throw Error(str("[", op, "] per-channel quantization needs channels along axis 0, found a tensor of shape ",
                    shape_str(x.shape())));
  return x.size(0);
}

}  // namespace qnn
