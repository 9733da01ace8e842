// TensorRT's entropy calibration (ptq/kl_threshold.h) against an independent NumPy port
// (scripts/make_ptq_fixture.py, tests/fixtures/ptq.safetensors) on four fixed histograms: a
// Laplace magnitude, a ReLU'd Gaussian, a spike far from the bulk and a sparse histogram with
// empty groups; 8 to 256 levels. The best candidate must be the same bin and the divergences equal.
#include <doctest.h>

#include "ptq/kl_threshold.h"
#include "tensor/safetensors.h"

using namespace qnn;

TEST_CASE("kl threshold: the best candidate and KL(P||Q) equal the NumPy port's") {
  const SafetensorsFile f = load_safetensors("tests/fixtures/ptq.safetensors");
  int cases = 0;
  for (int k = 0; f.has("kl" + std::to_string(k) + ".hist"); ++k, ++cases) {
    const std::string p = "kl" + std::to_string(k) + ".";
    CAPTURE(p);
    const std::vector<float> counts = f.get(p + "hist").to_vector();
    const int64_t levels = int64_t(f.get(p + "levels").item());
    Histogram h(2048.0, int64_t(counts.size()));  // max = bins: thresholds in bins
    h.counts.assign(counts.begin(), counts.end());
    const int64_t best = int64_t(f.get(p + "best").item());
    CHECK(kl_threshold(h, levels) == doctest::Approx(double(best) + 0.5));
    const std::vector<float> probe = f.get(p + "probe").to_vector(), divergence = f.get(p + "divergence").to_vector();
    for (size_t i = 0; i < probe.size(); ++i) {
      CAPTURE(probe[i]);
      CHECK(kl_candidate_divergence(h.counts, int64_t(probe[i]), levels) ==
            doctest::Approx(divergence[i]).epsilon(1e-5));
    }
  }
  CHECK(cases == 4);
}

TEST_CASE("kl threshold: degenerate histograms give the max; bad levels are errors") {
  Histogram empty(3.0, 2048);
  CHECK(kl_threshold(empty, 128) == 3.0);
  Histogram few(3.0, 100);
  few.counts[5] = 10;
  CHECK(kl_threshold(few, 128) == 3.0);  // fewer bins than levels: nothing to merge
  CHECK_THROWS_WITH(kl_threshold(few, 1), doctest::Contains("at least 2 levels"));
}
