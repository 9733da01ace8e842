// Observer behaviour beyond the PyTorch comparison (tests/qat/test_observer_torch.cpp): the
// moving average's first batch, freezing, restoring a range, per-channel ranges, and the errors
// for bad configurations and inputs.
#include <cmath>
#include <limits>

#include "qat/observer.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("observer: the moving average starts at the first batch's range, then moves 1% of the way") {
  Observer o({ObserverKind::MovingAverageMinMax, {0, 255}});
  o.observe(vec({-1, 2}));
  CHECK(o.min_val().item() == -1.0f);
  CHECK(o.max_val().item() == 2.0f);
  o.observe(vec({-3, 4}));
  CHECK(o.min_val().item() == -1.0f + 0.01f * (-3.0f + 1.0f));
  CHECK(o.max_val().item() == 2.0f + 0.01f * (4.0f - 2.0f));
  // min-max keeps the extremes of everything seen
  Observer m({ObserverKind::MinMax, {0, 255}});
  m.observe(vec({-1, 2}));
  m.observe(vec({0, 1}));
  CHECK(m.min_val().item() == -1.0f);
  CHECK(m.max_val().item() == 2.0f);
}

TEST_CASE("observer: a frozen observer ignores new batches, so its qparams stay") {
  Observer o({ObserverKind::MinMax, {-8, 7}, true});
  o.observe(vec({-1, 0.5f}));
  const float before = o.qparams().scale.item();
  o.freeze();
  CHECK(o.frozen());
  o.observe(vec({-100, 100}));
  CHECK(o.qparams().scale.item() == before);
  o.freeze(false);
  o.observe(vec({-100, 100}));
  CHECK(o.qparams().scale.item() == 100.0f / 7.5f);
}

TEST_CASE("observer: per channel keeps one range per slice along axis 0") {
  Observer o({ObserverKind::MinMax, {0, 15}, false, Granularity::PerChannel});
  o.observe(Tensor::from_vector({-1, 1, 0.5f, 2, -3, -2}, {3, 2}));
  CHECK(o.min_val().to_vector() == std::vector<float>{-1, 0.5f, -3});
  CHECK(o.max_val().to_vector() == std::vector<float>{1, 2, -2});
  const QParams q = o.qparams();
  CHECK(q.scale.to_vector() == std::vector<float>{2.0f / 15, 2.0f / 15, 3.0f / 15});  // 0 is always in the range
  CHECK(q.zero_point.to_vector() == std::vector<float>{std::nearbyint(0 - (-1) / (2.0f / 15)), 0, 15});
}

TEST_CASE("observer: set_range restores a range (a checkpoint), checked") {
  Observer o({ObserverKind::MovingAverageMinMax, {0, 255}, false, Granularity::PerChannel});
  o.set_range(vec({-1, 0}), vec({1, 2}));
  CHECK(o.has_observed());
  CHECK(o.qparams().scale.to_vector() == std::vector<float>{2.0f / 255, 2.0f / 255});
  o.observe(Tensor::from_vector({-3, 3, 0, 0}, {2, 2}));  // not the first batch: a moving average
  CHECK(o.min_val().data()[0] == -1.0f + 0.01f * (-3.0f + 1.0f));
  CHECK_THROWS_WITH_AS(o.set_range(vec({1}), vec({0})),
                       "[set_range] channel 0 needs a finite range with min <= max, found 1 to 0", Error);
  Observer t({ObserverKind::MinMax, {0, 255}});
  CHECK_THROWS_WITH_AS(t.set_range(vec({0, 0}), vec({1, 1})),
                       "[set_range] a per-tensor observer keeps one range, found 2", Error);
}

TEST_CASE("observer: errors name what was expected and found") {
  CHECK_THROWS_WITH_AS(Observer({ObserverKind::MinMax, {2, 255}}),
                       "[Observer] the quantization range must contain 0 (qmin <= 0 <= qmax), found [2, 255]", Error);
  ObserverConfig bad;
  bad.averaging_constant = 0.0f;
  CHECK_THROWS_WITH_AS(Observer{bad}, "[Observer] the averaging constant must be in (0, 1], found 0", Error);
  Observer o({ObserverKind::MinMax, {0, 255}, false, Granularity::PerChannel});
  CHECK_THROWS_WITH_AS(o.qparams(),
                       "[qparams] the min-max observer has observed nothing yet: call observe() (or set_range()) first",
                       Error);
  CHECK_THROWS_WITH_AS(o.observe(Tensor()), "[observe] cannot observe an empty or undefined tensor", Error);
  o.observe(Tensor::zeros({3, 2}));
  CHECK_THROWS_WITH_AS(o.observe(Tensor::zeros({4, 2})),
                       "[observe] the observer has seen 3 channel(s) along axis 0; this tensor [4, 2] has 4", Error);
  Observer n({ObserverKind::MinMax, {0, 255}, false, Granularity::PerChannel});
  CHECK_THROWS_WITH_AS(n.observe(Tensor::from_vector({0, 1, std::nanf(""), 2}, {2, 2})),
                       doctest::Contains("[channel_min_max] the tensor [2, 2] holds a NaN or an infinity in channel 1"),
                       Error);
  CHECK_THROWS_WITH_AS(n.observe(vec({0, std::numeric_limits<float>::infinity()})),
                       doctest::Contains("holds a NaN or an infinity in channel 1"), Error);
  CHECK_FALSE(n.has_observed());
}
