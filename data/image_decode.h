// Image files to 8-bit RGB, rows of interleaved R, G, B bytes (HWC), as PIL's
// Image.open(path).convert("RGB") gives them to torchvision.
//
// Two decoders: stb_image (always built; JPEG baseline and progressive, PNG, BMP, binary PPM/PGM)
// and libjpeg-turbo's TurboJPEG API for JPEG files when the build defines QNN_TURBOJPEG (the
// Makefile does when /usr/include/turbojpeg.h exists). libjpeg-turbo is the library PIL itself
// decodes JPEGs with, so with it the pixels are PIL's exactly; stb_image's IDCT and chroma
// upsampling differ by a few grey levels.
//
// Conversions, as PIL's convert("RGB") does them:
//   grey (and grey + alpha)  -> R = G = B = grey
//   alpha                    -> dropped (not composited over a background)
//   16-bit PNG samples       -> the high byte (PIL agrees for RGB; for 16-bit grey PIL clamps
//                              the value to 255 instead, a rare case this decoder does not copy)
//   CMYK / YCCK JPEG         -> R = C' K' / 255 on the stored (Adobe-inverted) values, as PIL
//                              reads CMYK JPEGs; stb_image converts them the same way
// A file that cannot be read or decoded throws qnn::Error naming the file and the reason.
// Before either decoder runs, two checks refuse what both would otherwise answer differently or
// mishandle: an image whose header claims more than kMaxImagePixels pixels, PIL's
// DecompressionBombError threshold, refused before anything is allocated (a few bytes of header
// can claim 65,535 x 65,535 pixels, 12 GB to decode); and the truncated or malformed JPEG and PNG
// files of data/image_structure.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

struct RgbImage {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;  // height x width x 3
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

// PIL's DecompressionBombError threshold: 2 x Image.MAX_IMAGE_PIXELS (1024^3 / 4 / 3).
constexpr int64_t kMaxImagePixels = 2 * (int64_t{1024} * 1024 * 1024 / 4 / 3);

enum class ImageDecoder {
  automatic,  // TurboJPEG for JPEG files when built with it, stb_image for everything else
  stb,        // stb_image for every file
  turbojpeg,  // TurboJPEG for JPEG files (an error when not built with it), stb_image otherwise
};

// Whether this build has the TurboJPEG decoder.
bool turbojpeg_available();

// "stb" or "turbojpeg": what `decoder` uses for JPEG files in this build.
const char* jpeg_decoder_name(ImageDecoder decoder);

// Decodes a whole file; `path` names it in errors.
RgbImage decode_image_file(const std::string& path, ImageDecoder decoder = ImageDecoder::automatic);

// Decodes bytes held in memory; `name` says where they came from in errors.
RgbImage decode_image_bytes(const uint8_t* data, size_t size, const std::string& name,
                            ImageDecoder decoder = ImageDecoder::automatic);

}  // namespace qnn
