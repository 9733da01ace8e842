// The range observers against PyTorch 1.13 (tests/fixtures/fake_quant.safetensors): 48 observers,
// MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver and
// MovingAveragePerChannelMinMaxObserver (axis 0), affine and symmetric, quint8 and qint8 ranges
// of 8, 4 and 2 bits, each shown the same three batches (one holding a constant-zero channel, an
// all-positive and an all-negative channel). After every batch the running min and max and
// calculate_qparams()'s scale and zero point must equal PyTorch's exactly: the arithmetic
// (qat/observer_math.h) is PyTorch's, operation by operation.
#include "qat/observer.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("observers equal PyTorch's min-max and moving-average observers after each of three batches") {
  const SafetensorsFile& f = fake_quant_fixture();
  int observers = 0;
  for (int i = 0; f.has("obs" + std::to_string(i) + ".config"); ++i, ++observers) {
    const std::string p = "obs" + std::to_string(i) + ".";
    const std::vector<float> c = f.get(p + "config").to_vector();
    ObserverConfig config;
    config.kind = c[0] == 0 ? ObserverKind::MinMax : ObserverKind::MovingAverageMinMax;
    config.granularity = c[1] != 0 ? Granularity::PerChannel : Granularity::PerTensor;
    config.symmetric = c[2] != 0;
    config.range = {int64_t(c[3]), int64_t(c[4])};
    CAPTURE(p);
    CAPTURE(observer_kind_name(config.kind));
    CAPTURE(granularity_name(config.granularity));
    CAPTURE(config.symmetric);
    CAPTURE(config.range.qmin);
    CAPTURE(config.range.qmax);
    Observer observer(config);
    for (int k = 0; k < 3; ++k) {
      observer.observe(f.get("obs.batch" + std::to_string(k)));
      const std::string b = std::to_string(k);
      CHECK_EQUAL_TENSORS(observer.min_val(), f.get(p + "min" + b), p + "min" + b);
      CHECK_EQUAL_TENSORS(observer.max_val(), f.get(p + "max" + b), p + "max" + b);
      const QParams q = observer.qparams();
      CHECK_EQUAL_TENSORS(q.scale, f.get(p + "scale" + b), p + "scale" + b);
      CHECK_EQUAL_TENSORS(q.zero_point, f.get(p + "zero_point" + b), p + "zero_point" + b);
    }
  }
  CHECK(observers == 48);
}

TEST_CASE("observers: the constant-zero channel gets scale eps and the zero point at qmin (affine)") {
  // Batch 0's channel 2 is all zeros: min = max = 0, so the scale is max(0, eps) = 2^-23.
  Observer observer({ObserverKind::MinMax, {0, 15}, false, Granularity::PerChannel});
  observer.observe(fake_quant_fixture().get("obs.batch0"));
  const QParams q = observer.qparams();
  CHECK(q.scale.data()[2] == std::ldexp(1.0f, -23));
  CHECK(q.zero_point.data()[2] == 0.0f);
}
