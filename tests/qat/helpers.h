// Shared helpers of the QAT tests: the PyTorch fixture (tests/fixtures/fake_quant.safetensors,
// written by scripts/make_fake_quant_fixture.py and committed, so nothing is skipped), exact and
// tolerant comparisons that report the first differing elements, and quick tensor builders.
#pragma once
#include <doctest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "qat/quant_range.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace qnn::testing {

inline const SafetensorsFile& fake_quant_fixture() {
  static const SafetensorsFile file = load_safetensors("tests/fixtures/fake_quant.safetensors");
  return file;
}

// The number of elements that differ (NaN equals NaN; -0 equals +0, as float comparison has it),
// with the first few listed in `report`.
inline int64_t count_differences(const Tensor& ours, const Tensor& theirs, std::string& report, double atol = 0,
                                 double rtol = 0) {
  REQUIRE(ours.numel() == theirs.numel());
  const std::vector<float> a = ours.to_vector(), b = theirs.to_vector();
  std::ostringstream os;
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])) ||
                      std::fabs(double(a[i]) - b[i]) <= atol + rtol * std::fabs(double(b[i]));
    if (!same && differing++ < 6) os << "  element " << i << ": ours " << a[i] << ", expected " << b[i] << "\n";
  }
  report = os.str();
  return differing;
}

#define CHECK_EQUAL_TENSORS(ours, theirs, what)                                          \
  do {                                                                                   \
    std::string diff_report_;                                                            \
    const int64_t differing_ = ::qnn::testing::count_differences(ours, theirs, diff_report_); \
    CHECK_MESSAGE(differing_ == 0, (what) << ": " << differing_ << " element(s) differ\n" << diff_report_); \
  } while (0)

#define CHECK_CLOSE_TENSORS(ours, theirs, atol, rtol, what)                                         \
  do {                                                                                              \
    std::string diff_report_;                                                                       \
    const int64_t differing_ = ::qnn::testing::count_differences(ours, theirs, diff_report_, atol, rtol); \
    CHECK_MESSAGE(differing_ == 0, (what) << ": " << differing_ << " element(s) differ\n" << diff_report_); \
  } while (0)

inline QuantRange fixture_range(const Tensor& range) {
  const std::vector<float> r = range.to_vector();
  REQUIRE(r.size() == 2);
  return {int64_t(r[0]), int64_t(r[1])};
}

inline Tensor vec(const std::vector<float>& v) { return Tensor::from_vector(v, {int64_t(v.size())}); }

}  // namespace qnn::testing
