// Test helpers for the image tests: the fixture folder written by scripts/make_image_fixture.py,
// reading its expected images, and comparing two images within a tolerance.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <string>

#include "data/image_decode.h"

namespace qnn::testing {

inline std::string image_fixture(const std::string& name) { return "tests/fixtures/images/" + name; }

// The largest absolute difference between two images of the same size (-1 when the sizes differ).
inline int max_abs_difference(const RgbImage& a, const RgbImage& b) {
  if (a.height != b.height || a.width != b.width) return -1;
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return worst;
}

inline double mean_abs_difference(const RgbImage& a, const RgbImage& b) {
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return a.pixels.empty() ? 0 : sum / a.pixels.size();
}

}  // namespace qnn::testing
