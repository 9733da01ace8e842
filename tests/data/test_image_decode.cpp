// Decoding image files to RGB against PIL's Image.open(...).convert("RGB") (fixtures from
// scripts/make_image_fixture.py): grey, alpha, grey + alpha, 16-bit PNG, baseline, progressive,
// grey and CMYK JPEG, a JPEG with restart markers, with stb_image (JPEGs within 4 grey levels, 2
// measured) and, when built, TurboJPEG (exactly PIL's pixels); errors name the file; truncated
// JPEGs, decompression bombs, malformed Huffman tables and a fatal error that follows a warning
// are refused, by either decoder.
#include <doctest.h>

#include <fstream>
#include <iterator>
#include <string>
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

TEST_CASE("image decode: JPEGs (baseline, progressive, grey, CMYK, restart markers) against PIL") {
  std::vector<ImageDecoder> decoders{ImageDecoder::stb};
  if (turbojpeg_available()) decoders.push_back(ImageDecoder::turbojpeg);
  for (ImageDecoder decoder : decoders) {
    for (const char* name : {"baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "restart.jpg"}) {
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
                       doctest::Contains("cannot decode tests/fixtures/images/not_an_image.jpg"), Error);
  const std::string empty_ppm = "P6\n0 0\n255\n";  // stb_image returns it as an image of no pixels
  CHECK_THROWS_WITH_AS(decode_image_bytes(reinterpret_cast<const uint8_t*>(empty_ppm.data()), empty_ppm.size(), "empty.ppm"),
                       doctest::Contains("cannot decode empty.ppm (stb_image): an image of 0x0 pixels"), Error);
  const std::vector<uint8_t> broken_gif{'G', 'I', 'F', '8', '9', 'a', 0, 0};
  CHECK_THROWS_WITH_AS(decode_image_bytes(broken_gif.data(), broken_gif.size(), "broken.gif"),
                       doctest::Contains("cannot decode broken.gif (stb_image): "), Error);
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

namespace {

std::vector<uint8_t> fixture_bytes(const std::string& name) {
  std::ifstream file(image_fixture(name), std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// The offset of the first segment with `marker` (its FF byte), walking the segments by their
// lengths from the start-of-image marker; the files here have it before their first scan.
size_t segment_offset(const std::vector<uint8_t>& jpeg, uint8_t marker) {
  size_t p = 2;
  while (p + 4 <= jpeg.size() && jpeg[p] == 0xFF && jpeg[p + 1] != marker)
    p += 2 + (size_t(jpeg[p + 2]) << 8 | jpeg[p + 3]);
  REQUIRE(p + 4 <= jpeg.size());
  REQUIRE(jpeg[p + 1] == marker);
  return p;
}

std::vector<ImageDecoder> jpeg_decoders() {
  std::vector<ImageDecoder> decoders{ImageDecoder::stb};
  if (turbojpeg_available()) decoders.push_back(ImageDecoder::turbojpeg);
  return decoders;
}

// Decoding `bytes` with every decoder throws qnn::Error naming the file. Its message holds
// `reason` from every decoder when `by` is automatic (the checks made before either decoder runs:
// "cannot decode case.jpg: <reason>"), else from decoder `by` (in its own message) only.
void check_refused(const std::vector<uint8_t>& bytes, const std::string& reason,
                   ImageDecoder by = ImageDecoder::automatic) {
  for (ImageDecoder decoder : jpeg_decoders()) {
    const std::string decoder_name = jpeg_decoder_name(decoder);
    CAPTURE(decoder_name);
    std::string message = "(nothing thrown)";
    try {
      decode_image_bytes(bytes.data(), bytes.size(), "case.jpg", decoder);
    } catch (const Error& e) {
      message = e.what();
    }
    CAPTURE(message);
    CHECK(message.find(by == ImageDecoder::automatic ? "cannot decode case.jpg: " : "cannot decode case.jpg") !=
          std::string::npos);
    if (by == ImageDecoder::automatic || decoder == by) CHECK(message.find(reason) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("image decode: a truncated JPEG is an error with either decoder, as in PIL; trailing and stray bytes are not") {
  for (const char* name : {"baseline.jpg", "progressive.jpg", "restart.jpg"}) {
    CAPTURE(name);
    const std::vector<uint8_t> whole = fixture_bytes(name);
    REQUIRE(whole.size() > 200);
    REQUIRE((whole[whole.size() - 2] == 0xFF && whole.back() == 0xD9));
    for (const size_t kept : {whole.size() - 2, whole.size() * 3 / 4, whole.size() / 2, size_t{200}, size_t{3}}) {
      CAPTURE(kept);
      check_refused({whole.begin(), whole.begin() + long(kept)}, "the JPEG data ends before its end-of-image marker");
    }
    // FF fill bytes before the start-of-image marker: stb_image reads such a file as a JPEG.
    std::vector<uint8_t> filled{0xFF, 0xFF};
    filled.insert(filled.end(), whole.begin(), whole.begin() + long(whole.size() / 2));
    CHECK_THROWS_WITH_AS(decode_image_bytes(filled.data(), filled.size(), "case.jpg", ImageDecoder::stb),
                         doctest::Contains("before its end-of-image marker"), Error);
    // Bytes after the end-of-image marker, and a stray byte between the first two segments,
    // are passed over (PIL passes over both; TurboJPEG warns about the stray byte).
    std::vector<uint8_t> trailing = whole;
    for (const uint8_t b : {0x00, 0xFF, 0xD8, 0xFF, 0x12}) trailing.push_back(b);
    std::vector<uint8_t> stray = whole;
    stray.insert(stray.begin() + long(segment_offset(whole, 0xE0) + 2 + (size_t(whole[4]) << 8 | whole[5])), 0x00);
    for (ImageDecoder decoder : jpeg_decoders()) {
      const std::string decoder_name = jpeg_decoder_name(decoder);
      CAPTURE(decoder_name);
      const RgbImage expected = decode_image_bytes(whole.data(), whole.size(), name, decoder);
      CHECK(max_abs_difference(decode_image_bytes(trailing.data(), trailing.size(), name, decoder), expected) == 0);
      CHECK(max_abs_difference(decode_image_bytes(stray.data(), stray.size(), name, decoder), expected) == 0);
    }
  }
}

TEST_CASE("image decode: a fatal error after a warning is an error, as in PIL") {
  // progressive.jpg with a later scan's spectral start set to 70 (past coefficient 63), which
  // libjpeg stops at, and a stray byte after its first segment, which libjpeg warns about first.
  std::vector<uint8_t> bad = fixture_bytes("progressive.jpg");
  std::vector<size_t> scans;  // FF DA: in entropy-coded data an FF byte is followed by 00 or a restart marker
  for (size_t p = 0; p + 1 < bad.size(); ++p)
    if (bad[p] == 0xFF && bad[p + 1] == 0xDA) scans.push_back(p);
  REQUIRE(scans.size() > 2);
  const size_t components = bad[scans[2] + 4];
  bad[scans[2] + 5 + 2 * components] = 70;
  check_refused(bad, "Invalid progressive parameters Ss=70", ImageDecoder::turbojpeg);
  bad.insert(bad.begin() + long(segment_offset(bad, 0xE0) + 2 + (size_t(bad[4]) << 8 | bad[5])), 0x00);
  check_refused(bad, "Invalid progressive parameters Ss=70", ImageDecoder::turbojpeg);
}

TEST_CASE("image decode: a header claiming more pixels than PIL's decompression-bomb limit is refused before decoding") {
  CHECK(kMaxImagePixels == 178956970);  // PIL: 2 * Image.MAX_IMAGE_PIXELS
  // baseline.jpg with its frame header (SOF0: FF C0, length, precision, height, width) saying
  // 65,000 x 65,000: 12 GB of pixels from a 2 KB file.
  std::vector<uint8_t> jpeg = fixture_bytes("baseline.jpg");
  const size_t sof = segment_offset(jpeg, 0xC0);
  for (const size_t at : {sof + 5, sof + 7}) jpeg[at] = 65000 >> 8, jpeg[at + 1] = 65000 & 0xFF;
  check_refused(jpeg, "its header says 65000x65000 pixels, more than the 178956970 accepted");
  // A PNG header of 13,380 x 13,380 (179,024,400 pixels, just over), then the end chunk.
  std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  for (int side = 0; side < 2; ++side)
    for (const int shift : {24, 16, 8, 0}) png.push_back(uint8_t(13380 >> shift));
  for (const uint8_t b : {8, 0, 0, 0, 0, 0, 0, 0, 0}) png.push_back(b);  // depth 8, grey, CRC (unread)
  png.insert(png.end(), {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82});
  CHECK_THROWS_WITH_AS(decode_image_bytes(png.data(), png.size(), "case.png"),
                       doctest::Contains("cannot decode case.png: its header says 13380x13380 pixels"), Error);
}

TEST_CASE("image decode: a JPEG Huffman table of more than 256 codes, or tables that do not add up to their segment, are refused") {
  const std::vector<uint8_t> whole = fixture_bytes("baseline.jpg");
  const size_t dht = segment_offset(whole, 0xC4);
  // The counts of 1- to 16-bit codes, at dht + 5 .. dht + 20: 18 + 255 = 273.
  std::vector<uint8_t> many = whole;
  for (int i = 0; i < 16; ++i) many[dht + 5 + i] = 0;
  many[dht + 19] = 18, many[dht + 20] = 255;
  check_refused(many, "defines 273 codes, more than the 256 a JPEG allows");
  // The segment's length one byte longer than its tables.
  std::vector<uint8_t> longer = whole;
  longer[dht + 3] = uint8_t(longer[dht + 3] + 1);
  check_refused(longer, "do not add up to its");
}

TEST_CASE("image decode: a PNG whose chunk runs past the end, or that ends without IEND, is refused") {
  const std::vector<uint8_t> whole = fixture_bytes("source.png");
  // Cut inside the image data: PIL says "image file is truncated".
  const std::vector<uint8_t> half(whole.begin(), whole.begin() + long(whole.size() / 2));
  CHECK_THROWS_WITH_AS(decode_image_bytes(half.data(), half.size(), "half.png"),
                       doctest::Contains("cannot decode half.png: the PNG data ends inside its chunk 2 ('IDAT', "), Error);
  // The last chunk (IEND: 12 bytes) cut off.
  const std::vector<uint8_t> no_end(whole.begin(), whole.end() - 12);
  CHECK_THROWS_WITH_AS(decode_image_bytes(no_end.data(), no_end.size(), "no_end.png"),
                       doctest::Contains("cannot decode no_end.png: the PNG data ends before its IEND chunk"), Error);
  // An image-data chunk claiming 2 GB in a file of a few kilobytes; the type, not letters, in hex.
  std::vector<uint8_t> claims = whole;
  const size_t idat = 8 + 12 + 13;  // after the signature and IHDR
  REQUIRE(std::string(claims.begin() + long(idat) + 4, claims.begin() + long(idat) + 8) == "IDAT");
  claims[idat] = 0x7F, claims[idat + 4] = 0x01;
  CHECK_THROWS_WITH_AS(decode_image_bytes(claims.data(), claims.size(), "claims.png"),
                       doctest::Contains("chunk 2 (of type 0x1444154, 2130"), Error);
  // Bytes after IEND are ignored.
  std::vector<uint8_t> trailing = whole;
  trailing.insert(trailing.end(), {0, 0, 0, 9, 'x'});
  CHECK(max_abs_difference(decode_image_bytes(trailing.data(), trailing.size(), "trailing.png"),
                           decode_image_bytes(whole.data(), whole.size(), "whole.png")) == 0);
}

TEST_CASE("image decode: malformed JPEG tables and scans are refused; a missing table 0 or 1 is TurboJPEG's standard one") {
  const std::vector<uint8_t> whole = fixture_bytes("baseline.jpg");
  const size_t dht = segment_offset(whole, 0xC4), sos = segment_offset(whole, 0xDA), app0 = segment_offset(whole, 0xE0);
  std::vector<uint8_t> bad_id = whole;
  bad_id[dht + 4] = 0x24;  // the first table's class and id
  check_refused(bad_id, "of class 2 and id 4: a JPEG has classes 0 and 1 and ids 0 to 3");
  std::vector<uint8_t> not_prefix = whole;
  not_prefix[dht + 5] = 3;  // three 1-bit codes
  check_refused(not_prefix, "has code lengths no prefix code has (too many codes of 1 bit or fewer");
  std::vector<uint8_t> scan = whole;
  REQUIRE(scan[sos + 4] == 3);  // three components, in 12 bytes
  scan[sos + 4] = 2;
  check_refused(scan, "the start-of-scan segment at byte " + std::to_string(sos) + " has 12 bytes for 2 components");
  std::vector<uint8_t> short_segment = whole;
  short_segment[app0 + 2] = 0, short_segment[app0 + 3] = 1;
  check_refused(short_segment, "has a length of 1, below 2");

  // Without its DHT segments the file relies on the standard tables (PIL's writer used them):
  // TurboJPEG, as PIL, decodes it to the same pixels; stb_image cannot.
  std::vector<uint8_t> no_tables(whole.begin(), whole.begin() + 2);
  for (size_t p = 2; p < whole.size();) {
    const size_t length = whole[p + 1] == 0xDA ? whole.size() - p : 2 + (size_t(whole[p + 2]) << 8 | whole[p + 3]);
    if (whole[p + 1] != 0xC4) no_tables.insert(no_tables.end(), whole.begin() + long(p), whole.begin() + long(p + length));
    p += length;
  }
  REQUIRE(no_tables.size() < whole.size());
  CHECK_THROWS_WITH_AS(decode_image_bytes(no_tables.data(), no_tables.size(), "case.jpg", ImageDecoder::stb),
                       doctest::Contains("decodes with DC Huffman table 0, which the file does not define before it"),
                       Error);
  if (turbojpeg_available()) {
    const RgbImage expected = decode_image_bytes(whole.data(), whole.size(), "whole.jpg", ImageDecoder::turbojpeg);
    const RgbImage got = decode_image_bytes(no_tables.data(), no_tables.size(), "case.jpg", ImageDecoder::turbojpeg);
    CHECK(max_abs_difference(got, expected) == 0);
  }
}

TEST_CASE("image decode: a PNM header with a width, height or maximum value out of range is refused") {
  const auto decode = [](const std::string& text) {
    return decode_image_bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size(), "case.ppm");
  };
  // Digits enough to overflow an int, where stb_image 2.27 reads them into one.
  CHECK_THROWS_WITH_AS(decode("P6\n" + std::string(40, '8') + " 6\n255\n"),
                       doctest::Contains("cannot decode case.ppm: the PNM header's width is over 2^40"), Error);
  CHECK_THROWS_WITH_AS(decode("P5 # a comment\n4 16777217\n255\n"),
                       doctest::Contains("the PNM header's height is 16777217, more than 16777216"), Error);
  CHECK_THROWS_WITH_AS(decode("P6\n1 1\n65536\n"), doctest::Contains("maximum value is 65536, more than 65535"), Error);
  const RgbImage one = decode("P6\n# one pixel\n1 1\n255\n\x01\x02\x03");
  CHECK((one.height == 1 && one.width == 1 && one.pixels == std::vector<uint8_t>{1, 2, 3}));
}
