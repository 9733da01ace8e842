// Augmentation: normalisation values, crop and flip against a direct re-statement of
// PyTorch's RandomCrop(padding) + RandomHorizontalFlip, and determinism of the draws.
#include <doctest.h>

#include <vector>

#include "data/augment.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// The transform spelled out the slow way: build the zero-padded image, cut the window, mirror
// it if asked, then (x/255 - mean)/std.
std::vector<float> reference_augment(const uint8_t* image, int crop_y, int crop_x, bool flip,
                                     int padding, const std::vector<float>& mean,
                                     const std::vector<float>& stddev) {
  const int side = 32, padded_side = side + 2 * padding;
  std::vector<uint8_t> padded(3 * padded_side * padded_side, 0);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        padded[(c * padded_side + y + padding) * padded_side + x + padding] =
            image[(c * side + y) * side + x];
  std::vector<float> out(3 * side * side);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const int cx = flip ? side - 1 - x : x;
        const uint8_t v = padded[(c * padded_side + y + crop_y) * padded_side + cx + crop_x];
        out[(c * side + y) * side + x] = (v / 255.0f - mean[c]) / stddev[c];
      }
  return out;
}

std::vector<float> augmented(const uint8_t* image, const AugmentDraw& draw, int padding = 4) {
  std::vector<float> out(3072);
  augment_image(image, 3, 32, 32, draw, padding, cifar10_normalization(), out.data());
  return out;
}

}  // namespace

TEST_CASE("augment: normalisation is (x/255 - mean)/std per channel") {
  const Normalization norm = cifar10_normalization();
  CHECK(norm.channels() == 3);
  CHECK(norm.mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(norm.stddev == std::vector<float>{0.2023f, 0.1994f, 0.2010f});
  CHECK(norm.table(0)[0] == doctest::Approx(-0.4914 / 0.2023));
  CHECK(norm.table(1)[255] == doctest::Approx((1 - 0.4822) / 0.1994));
  CHECK(norm.table(2)[100] == doctest::Approx((100 / 255.0 - 0.4465) / 0.2010));

  const ImageDataset d = synthetic_dataset(1);
  std::vector<float> out(3072);
  normalize_image(d.image(0), 3, 32, 32, norm, out.data());
  CHECK(out == reference_augment(d.image(0), 4, 4, false, 4, norm.mean, norm.stddev));
  CHECK(out[1024 + 33] == doctest::Approx((d.image(0)[1024 + 33] / 255.0 - 0.4822) / 0.1994));

  CHECK_THROWS_WITH_AS(Normalization({0.5f}, {0.5f, 0.5f}),
                       doctest::Contains("found 1 means and 2 stddevs"), Error);
  CHECK_THROWS_WITH_AS(Normalization({0.5f}, {0.0f}), doctest::Contains("expected > 0"), Error);
  CHECK_THROWS_WITH_AS(normalize_image(d.image(0), 1, 32, 32, norm, out.data()),
                       doctest::Contains("normalisation has 3 channels, the image has 1"), Error);
}

TEST_CASE("augment: a known crop leaves -mean/std in the padded region") {
  const ImageDataset d = synthetic_dataset(1);
  const Normalization norm = cifar10_normalization();
  // Window at (0, 8) of the 40x40 padded image: output rows 0..3 and columns 28..31 are padding,
  // output (y, x) elsewhere is source (y - 4, x + 4).
  const std::vector<float> out = augmented(d.image(0), {0, 8, false});
  for (int c = 0; c < 3; ++c) {
    const float pad = -norm.mean[c] / norm.stddev[c];
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const float v = out[(c * 32 + y) * 32 + x];
        if (y < 4 || x >= 28) {
          CHECK(v == doctest::Approx(pad));
        } else {
          CHECK(v == norm.table(c)[d.image(0)[(c * 32 + y - 4) * 32 + x + 4]]);
        }
      }
  }
}

TEST_CASE("augment: every offset and flip matches padded crop then mirror") {
  const ImageDataset d = synthetic_dataset(1);
  const Normalization norm = cifar10_normalization();
  for (int padding : {0, 4})
    for (int cy = 0; cy <= 2 * padding; ++cy)
      for (int cx = 0; cx <= 2 * padding; ++cx)
        for (bool flip : {false, true}) {
          CAPTURE(padding);
          CAPTURE(cy);
          CAPTURE(cx);
          CAPTURE(flip);
          CHECK(augmented(d.image(0), {cy, cx, flip}, padding) ==
                reference_augment(d.image(0), cy, cx, flip, padding, norm.mean, norm.stddev));
        }
  // A flip with the centred window mirrors each row: output (y, x) is source (y, 31 - x).
  const std::vector<float> flipped = augmented(d.image(0), {4, 4, true});
  CHECK(flipped[(2 * 32 + 5) * 32 + 0] == norm.table(2)[d.image(0)[(2 * 32 + 5) * 32 + 31]]);
  CHECK(flipped[(2 * 32 + 5) * 32 + 31] == norm.table(2)[d.image(0)[(2 * 32 + 5) * 32 + 0]]);
  CHECK(flipped != augmented(d.image(0), {4, 4, false}));
  CHECK_THROWS_WITH_AS(augmented(d.image(0), {9, 0, false}),
                       doctest::Contains("crop offset (9, 0) outside 0..8"), Error);
}

TEST_CASE("augment: draws depend only on (seed, epoch, index) and are uniform") {
  const AugmentDraw a = draw_augmentation(7, 3, 1234, 4);
  const AugmentDraw b = draw_augmentation(7, 3, 1234, 4);
  CHECK(a.crop_y == b.crop_y);
  CHECK(a.crop_x == b.crop_x);
  CHECK(a.flip == b.flip);

  // Over many images, another epoch (or seed) changes most draws; the same one changes none.
  const int n = 9000;
  int same_epoch_changes = 0, other_epoch_changes = 0, other_seed_changes = 0, flips = 0;
  std::vector<int> y_counts(9, 0), x_counts(9, 0);
  auto differ = [](const AugmentDraw& p, const AugmentDraw& q) {
    return p.crop_y != q.crop_y || p.crop_x != q.crop_x || p.flip != q.flip;
  };
  for (int i = 0; i < n; ++i) {
    const AugmentDraw d = draw_augmentation(7, 3, i, 4);
    same_epoch_changes += differ(d, draw_augmentation(7, 3, i, 4));
    other_epoch_changes += differ(d, draw_augmentation(7, 4, i, 4));
    other_seed_changes += differ(d, draw_augmentation(8, 3, i, 4));
    REQUIRE(d.crop_y >= 0);
    REQUIRE(d.crop_y <= 8);
    REQUIRE(d.crop_x >= 0);
    REQUIRE(d.crop_x <= 8);
    ++y_counts[d.crop_y];
    ++x_counts[d.crop_x];
    flips += d.flip;
  }
  CHECK(same_epoch_changes == 0);
  CHECK(other_epoch_changes > n * 9 / 10);  // expected: all but 1/162 of them
  CHECK(other_seed_changes > n * 9 / 10);
  for (int k = 0; k < 9; ++k) {  // 1000 expected in each; 5 standard deviations is about 150
    CAPTURE(k);
    CHECK(y_counts[k] > 850);
    CHECK(y_counts[k] < 1150);
    CHECK(x_counts[k] > 850);
    CHECK(x_counts[k] < 1150);
  }
  CHECK(flips > n / 2 - 250);
  CHECK(flips < n / 2 + 250);
  const AugmentDraw none = draw_augmentation(7, 3, 5, 0);  // no padding: no crop offset
  CHECK(none.crop_y == 0);
  CHECK(none.crop_x == 0);
}
