// LSQ's initial step and gradient scale (see qat/lsq.h).
#include "qat/lsq.h"

#include <cmath>
#include <vector>

namespace qnn {

float lsq_grad_factor(int64_t numel, int64_t q_p) {
  QNN_CHECK(numel >= 1 && q_p >= 1, "LSQ's gradient scale needs N >= 1 elements and Q_P >= 1, found N = ", numel,
            ", Q_P = ", q_p);
  return static_cast<float>(1.0 / std::sqrt(double(numel) * double(q_p)));
}

Tensor lsq_initial_scale(const Tensor& v, QuantRange range, Granularity granularity) {
  check_quant_range("lsq_initial_scale", range);
  QNN_CHECK(v.defined() && v.numel() > 0, "cannot initialise a step from an empty tensor");
  QNN_CHECK(range.qmax >= 1, "LSQ needs Q_P = qmax >= 1, found the range [", range.qmin, ", ", range.qmax, "]");
  const int64_t channels = qparam_count("lsq_initial_scale", v, granularity);
  const int64_t inner = v.numel() / channels;
  const std::vector<float> values = v.to_vector();
  std::vector<float> scale(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t i = c * inner; i < (c + 1) * inner; ++i) sum += std::fabs(double(values[i]));
    const double s = 2.0 * (sum / double(inner)) / std::sqrt(double(range.qmax));
    if (!(std::isfinite(s) && float(s) > 0.0f))
      throw Error(str("[lsq_initial_scale] 2 mean|v| / sqrt(Q_P) is ", s,
                      channels > 1 ? " in channel " + std::to_string(c) : std::string(), " of ",
                      shape_str(v.shape()), ": a step size must be finite and positive"));
    scale[c] = static_cast<float>(s);
  }
  return Tensor::from_vector(scale, {channels}).to(v.device());
}

}  // namespace qnn
