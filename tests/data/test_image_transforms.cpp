// torchvision's ImageNet transforms: PIL-bilinear resizing, resized crops, Resize and
// CenterCrop against torchvision 0.14 outputs on fixed parameters (tests/fixtures/images from
// scripts/make_image_fixture.py: the same bytes, since the resampler repeats Pillow's integer
// arithmetic), and RandomResizedCrop's draws: inside
// the image, area and aspect within range, the fallback, reproducible per key.
#include <doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "data/image_transforms.h"
#include "tensor/check.h"
#include "tests/data/image_fixtures.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("image transforms: resize and crops give torchvision-on-PIL's bytes") {
  const RgbImage source = decode_image_file(image_fixture("source.png"));
  const RgbImage tall = decode_image_file(image_fixture("tall.png"));
  std::ifstream cases(image_fixture("cases.txt"));
  REQUIRE(cases.good());
  int checked = 0;
  for (std::string line; std::getline(cases, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string file, op;
    fields >> file >> op;
    CAPTURE(line);
    const RgbImage expected = decode_image_file(image_fixture(file));
    RgbImage got;
    if (op == "resized_crop") {
      int i, j, h, w, size;
      fields >> i >> j >> h >> w >> size;
      got = resize_bilinear(source, PixelBox{i, j, h, w}, size, size, PixelBox{0, 0, size, size});
    } else if (op == "resize") {
      int n, height, width;
      fields >> n;
      shorter_side_size(source.height, source.width, n, height, width);
      got = resize_bilinear(source, height, width);
    } else if (op == "resize_center_crop" || op == "tall_resize_center_crop") {
      int n, crop;
      fields >> n >> crop;
      got = eval_transform(op == "resize_center_crop" ? source : tall, n, crop);
    } else if (op == "center_crop") {
      int crop;
      fields >> crop;
      const PixelBox box = center_crop_box(source.height, source.width, crop, crop);
      got = resize_bilinear(source, box, crop, crop, PixelBox{0, 0, crop, crop});
    } else {
      FAIL("unknown operation ", op);
    }
    REQUIRE(got.height == expected.height);
    REQUIRE(got.width == expected.width);
    const int worst = max_abs_difference(got, expected);
    CHECK(worst == 0);
    if (worst > 0) MESSAGE(file, ": max |difference| ", worst, ", mean ", mean_abs_difference(got, expected));
    ++checked;
  }
  CHECK(checked == 12);
}

TEST_CASE("image transforms: Resize and CenterCrop arithmetic as torchvision computes it") {
  int h = 0, w = 0;
  shorter_side_size(375, 500, 256, h, w);
  CHECK(h == 256);
  CHECK(w == 341);  // int(256 * 500 / 375) = int(341.33)
  shorter_side_size(500, 333, 256, h, w);
  CHECK(w == 256);
  CHECK(h == 384);  // int(256 * 500 / 333) = int(384.38)
  shorter_side_size(300, 300, 256, h, w);
  CHECK((h == 256 && w == 256));
  // Offsets round halves to even, as Python's round: (47 - 30) / 2 = 8.5 -> 8, 15.5 -> 16.
  const PixelBox box = center_crop_box(47, 61, 30, 30);
  CHECK(box.top == 8);
  CHECK(box.left == 16);
  CHECK_THROWS_WITH_AS(center_crop_box(20, 30, 224, 224), doctest::Contains("no larger than the image"), Error);
}

TEST_CASE("image transforms: RandomResizedCrop boxes lie inside, within scale and ratio") {
  int fallbacks = 0, flips = 0;
  const int trials = 2000;
  for (int index = 0; index < trials; ++index) {
    const int height = 50 + index % 300, width = 80 + (index * 7) % 400;
    const PixelBox box = random_resized_crop_box(height, width, 5, 3, index);
    CAPTURE(index);
    REQUIRE(box.top >= 0);
    REQUIRE(box.left >= 0);
    REQUIRE(box.height > 0);
    REQUIRE(box.width > 0);
    REQUIRE(box.top + box.height <= height);
    REQUIRE(box.left + box.width <= width);
    // w and h are rounded, so area and ratio hold to within the rounding of a pixel.
    const double area = double(box.height) * box.width / (double(height) * width);
    const double ratio = double(box.width) / box.height;
    const double slack_w = 0.5 / box.width, slack_h = 0.5 / box.height;
    CHECK(area >= 0.08 * (1 - slack_w) * (1 - slack_h) - 1e-9);
    CHECK(ratio >= 0.75 * (1 - slack_w) / (1 + slack_h) - 1e-9);
    CHECK(ratio <= 4.0 / 3 * (1 + slack_w) / (1 - slack_h) + 1e-9);
    if (box.height == height && box.width == width) ++fallbacks;
    flips += random_flip(5, 3, index);
    // The same key gives the same box; another epoch or seed another.
    const PixelBox again = random_resized_crop_box(height, width, 5, 3, index);
    CHECK((again.top == box.top && again.left == box.left && again.height == box.height && again.width == box.width));
  }
  CHECK(fallbacks < trials / 50);  // a whole-image crop is rare
  CHECK(flips > trials * 0.45);
  CHECK(flips < trials * 0.55);
  int same = 0;
  for (int index = 0; index < 100; ++index) {
    const PixelBox a = random_resized_crop_box(300, 400, 5, 3, index), b = random_resized_crop_box(300, 400, 5, 4, index);
    same += a.top == b.top && a.left == b.left && a.height == b.height && a.width == b.width;
  }
  CHECK(same < 5);
}

TEST_CASE("image transforms: RandomResizedCrop falls back to a clamped centre crop on extreme aspects") {
  // A 1000x10 strip: no try fits (w <= 10 needs aspect < 1/... far below 3/4), so the fallback:
  // w = W = 10, h = round(10 / 0.75) = 13, centred: top = (1000 - 13) // 2 = 493.
  for (int index = 0; index < 20; ++index) {
    const PixelBox box = random_resized_crop_box(1000, 10, 1, 0, index);
    CHECK(box.width == 10);
    CHECK(box.height == 13);
    CHECK(box.top == 493);
    CHECK(box.left == 0);
  }
  // A 10x1000 strip: h = H = 10, w = round(10 * 4/3) = 13, left = (1000 - 13) // 2 = 493.
  const PixelBox wide = random_resized_crop_box(10, 1000, 1, 0, 0);
  CHECK((wide.height == 10 && wide.width == 13 && wide.top == 0 && wide.left == 493));
}

TEST_CASE("image transforms: the training transform is the crop, resize and flip of its key") {
  const RgbImage source = decode_image_file(image_fixture("source.png"));
  for (int index = 0; index < 8; ++index) {
    const RgbImage out = train_transform(source, 24, 9, 2, index);
    REQUIRE((out.height == 24 && out.width == 24));
    const PixelBox box = random_resized_crop_box(source.height, source.width, 9, 2, index);
    const RgbImage crop = resize_bilinear(source, box, 24, 24, PixelBox{0, 0, 24, 24});
    const bool flip = random_flip(9, 2, index);
    bool same = true;
    for (int y = 0; y < 24; ++y)
      for (int x = 0; x < 24; ++x)
        for (int c = 0; c < 3; ++c)
          same &= out.row(y)[3 * x + c] == crop.row(y)[3 * (flip ? 23 - x : x) + c];
    CHECK(same);
    CHECK(max_abs_difference(out, train_transform(source, 24, 9, 2, index)) == 0);
  }
  const Normalization norm = imagenet_normalization();
  RgbImage one{1, 1, {0, 128, 255}};
  float chw[3];
  normalize_to_chw(one, norm, chw);
  CHECK(chw[0] == doctest::Approx((0 - 0.485) / 0.229).epsilon(1e-6));
  CHECK(chw[1] == doctest::Approx((128 / 255.0 - 0.456) / 0.224).epsilon(1e-6));
  CHECK(chw[2] == doctest::Approx((1 - 0.406) / 0.225).epsilon(1e-6));
}

TEST_CASE("image transforms: a resize's window is the whole resize cropped; a side beyond int is an error") {
  const RgbImage source = decode_image_file(image_fixture("source.png"));
  REQUIRE((source.height == 47 && source.width == 61));
  // Both axes resampled, only the columns, only the rows.
  for (const auto& [out_height, out_width] : {std::pair{100, 80}, std::pair{47, 90}, std::pair{20, 61}}) {
    const RgbImage whole = resize_bilinear(source, out_height, out_width);
    for (const PixelBox window : {PixelBox{0, 0, out_height, out_width}, PixelBox{3, 5, 10, 12},
                                  PixelBox{out_height - 1, out_width - 7, 1, 7}}) {
      CAPTURE(out_height);
      CAPTURE(out_width);
      CAPTURE(window.top);
      const RgbImage part = resize_bilinear(source, PixelBox{0, 0, 47, 61}, out_height, out_width, window);
      REQUIRE((part.height == window.height && part.width == window.width));
      bool same = true;
      for (int y = 0; y < window.height; ++y)
        for (int x = 0; x < 3 * window.width; ++x) same &= part.row(y)[x] == whole.row(window.top + y)[3 * window.left + x];
      CHECK(same);
    }
  }
  // A 1 x 10^7 image resized to a shorter side of 256 would be 2.56 x 10^9 pixels long.
  int h = 0, w = 0;
  CHECK_THROWS_WITH_AS(shorter_side_size(1, 10000000, 256, h, w), doctest::Contains("more than 2^31-1"), Error);
  // A 2 x 40,000 strip: Resize(256) is 256 x 5,120,000, of which only the centre crop is computed.
  RgbImage strip{2, 40000, std::vector<uint8_t>(size_t(2) * 40000 * 3)};
  for (size_t i = 0; i < strip.pixels.size(); ++i) strip.pixels[i] = uint8_t(i * 7);
  const RgbImage crop = eval_transform(strip, 256, 224);
  CHECK((crop.height == 224 && crop.width == 224));
}
