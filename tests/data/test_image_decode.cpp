// Decoding image files to RGB against PIL's Image.open(...).convert("RGB") (fixtures from
// scripts/make_image_fixture.py): grey, alpha, grey + alpha, 16-bit PNG, baseline, progressive,
// grey and CMYK JPEG, with stb_image (JPEGs within 4 grey levels, 2 measured) and, when built,
// TurboJPEG (exactly PIL's pixels); errors name the file.
#include <doctest.h>

#include <vector>

#include "data/image_decode.h"
#include "tensor/check.h"
#include "tests/data/image_fixtures.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("image decode: lossless files give PIL's convert('RGB') exactly") {
  for (const char* name : {"gray.png", "rgba.png", "gray_alpha.png", "rgb16.png", "source.png"}) {
    CAPTURE(name);
    const RgbImage image = decode_image_file(image_fixture(name), ImageDecoder::stb);
    const RgbImage expected = decode_image_file(image_fixture(std::string(name) + (std::string(name) == "source.png" ? "" : ".rgb.png")));
    CHECK(image.height == expected.height);
    CHECK(image.width == expected.width);
    CHECK(max_abs_difference(image, expected) == 0);
  }
  const RgbImage gray = decode_image_file(image_fixture("gray.png"));
  CHECK(gray.height == 30);
  CHECK(gray.width == 40);
  CHECK(gray.pixels[0] == gray.pixels[1]);
  CHECK(gray.pixels[1] == gray.pixels[2]);
}

TEST_CASE("image decode: JPEGs (baseline, progressive, grey, CMYK) against PIL") {
  std::vector<ImageDecoder> decoders{ImageDecoder::stb};
  if (turbojpeg_available()) decoders.push_back(ImageDecoder::turbojpeg);
  for (ImageDecoder decoder : decoders) {
    for (const char* name : {"baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg"}) {
      const std::string decoder_name = jpeg_decoder_name(decoder), file = name;
      CAPTURE(decoder_name);
      CAPTURE(file);
      const RgbImage image = decode_image_file(image_fixture(name), decoder);
      const RgbImage expected = decode_image_file(image_fixture(std::string(name) + ".rgb.png"));
      REQUIRE(image.height == expected.height);
      REQUIRE(image.width == expected.width);
      const int worst = max_abs_difference(image, expected);
      const double mean = mean_abs_difference(image, expected);
      if (decoder == ImageDecoder::turbojpeg) {
        CHECK(worst == 0);  // PIL decodes with the same libjpeg-turbo and the same settings
      } else {
        // stb_image's IDCT and chroma upsampling differ from libjpeg's: here by at most 2.
        CHECK(worst <= 4);
        CHECK(mean < 0.5);
      }
    }
  }
}

TEST_CASE("image decode: errors name the file and the reason") {
  CHECK_THROWS_WITH_AS(decode_image_file(image_fixture("not_an_image.jpg")),
                       doctest::Contains("not_an_image.jpg"), Error);
  CHECK_THROWS_WITH_AS(decode_image_file(image_fixture("not_an_image.jpg"), ImageDecoder::stb),
                       doctest::Contains("cannot decode tests/fixtures/images/not_an_image.jpg (stb_image)"), Error);
  CHECK_THROWS_WITH_AS(decode_image_file("tests/fixtures/images/missing.png"),
                       doctest::Contains("cannot open image tests/fixtures/images/missing.png"), Error);
  const std::vector<uint8_t> empty;
  CHECK_THROWS_WITH_AS(decode_image_bytes(empty.data(), 0, "nothing.png"),
                       doctest::Contains("cannot decode nothing.png: the file is empty"), Error);
  if (!turbojpeg_available()) {
    CHECK_THROWS_WITH_AS(decode_image_file(image_fixture("baseline.jpg"), ImageDecoder::turbojpeg),
                         doctest::Contains("this build has no TurboJPEG"), Error);
  }
}
