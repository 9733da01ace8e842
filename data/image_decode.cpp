// Decoding image files to 8-bit RGB (see data/image_decode.h): stb_image for every format,
// TurboJPEG for JPEG files when built with QNN_TURBOJPEG; the pixel limit and the structure
// checks of data/image_structure.h in front of both. stb_image is compiled here with static
// linkage, so other files may include their own copy.
#include "data/image_decode.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

#include "data/image_structure.h"
#include "tensor/check.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
// The formats of the image-folder files stb_image can read (data/image_folder.h takes
// torchvision's extensions, of which stb_image reads .jpg .jpeg .png .ppm .pgm .bmp) and no
// others: its GIF, PSD, TGA, HDR and PIC readers would only widen what a damaged or hostile file
// can reach.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include <stb_image.h>

#ifdef QNN_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace qnn {

namespace {

// Refuses an image whose header claims more than kMaxImagePixels, before its pixels are allocated.
void check_pixel_count(const std::string& name, int width, int height) {
  QNN_CHECK(static_cast<int64_t>(width) * height <= kMaxImagePixels, "cannot decode ", name, ": its header says ",
            width, "x", height, " pixels, more than the ", kMaxImagePixels,
            " accepted (PIL's decompression-bomb limit)");
}

RgbImage decode_with_stb(const uint8_t* data, size_t size, const std::string& name) {
  QNN_CHECK(size <= static_cast<size_t>(INT32_MAX), "cannot decode ", name, ": ", size,
            " bytes, stb_image reads at most 2^31-1");
  int width = 0, height = 0, channels = 0;
  if (stbi_info_from_memory(data, static_cast<int>(size), &width, &height, &channels))
    check_pixel_count(name, width, height);
  // Asking for 3 channels converts grey to RGB, drops alpha and takes the high byte of 16-bit
  // samples.
  const std::unique_ptr<uint8_t, void (*)(void*)> pixels(
      stbi_load_from_memory(data, static_cast<int>(size), &width, &height, &channels, 3), stbi_image_free);
  const char* reason = stbi_failure_reason();
  QNN_CHECK(pixels != nullptr, "cannot decode ", name, " (stb_image): ",
            reason != nullptr && *reason != '\0' ? reason : "no reason given (a damaged file?)");
  // stb_image returns a PNM file whose header says 0 x 0 pixels as an image.
  QNN_CHECK(width > 0 && height > 0, "cannot decode ", name, " (stb_image): an image of ", width, "x", height,
            " pixels");
  RgbImage image;
  image.height = height;
  image.width = width;
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(width) * height * 3);
  return image;
}

bool is_jpeg(const uint8_t* data, size_t size) {  // the start-of-image marker, then a marker
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

#ifdef QNN_TURBOJPEG
// One TurboJPEG decompressor per thread, made on first use and made anew after a failed decode
// (a handle that failed on one file can fail the next ones).
struct TurboHandle {
  tjhandle handle = tjInitDecompress();
  ~TurboHandle() { reset(nullptr); }
  void reset(tjhandle fresh) {
    if (handle != nullptr) tjDestroy(handle);
    handle = fresh;
  }
};

RgbImage decode_turbojpeg_with(tjhandle handle, const uint8_t* data, size_t size, const std::string& name);

RgbImage decode_with_turbojpeg(const uint8_t* data, size_t size, const std::string& name) {
  thread_local TurboHandle turbo;
  QNN_CHECK(turbo.handle != nullptr, "cannot decode ", name, ": TurboJPEG did not start: ",
            tjGetErrorStr2(nullptr));
  try {
    return decode_turbojpeg_with(turbo.handle, data, size, name);
  } catch (const Error&) {
    turbo.reset(tjInitDecompress());
    throw;
  }
}

RgbImage decode_turbojpeg_with(tjhandle handle, const uint8_t* data, size_t size, const std::string& name) {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  // A warning while reading the header (stray bytes between segments) is not an error: PIL
  // ignores it, and TurboJPEG has filled in the sizes.
  const bool header = tjDecompressHeader3(handle, data, static_cast<unsigned long>(size), &width, &height,
                                          &subsampling, &colorspace) == 0 ||
                      (tjGetErrorCode(handle) == TJERR_WARNING && width > 0 && height > 0);
  QNN_CHECK(header, "cannot decode ", name, " (TurboJPEG): ", tjGetErrorStr2(handle));
  check_pixel_count(name, width, height);
  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int format = cmyk ? TJPF_CMYK : TJPF_RGB;  // libjpeg does not convert CMYK to RGB
  const int bytes_per_pixel = cmyk ? 4 : 3;
  std::vector<uint8_t> decoded(static_cast<size_t>(width) * height * bytes_per_pixel);
  // Flags 0: the accurate integer IDCT and smooth chroma upsampling, libjpeg's defaults as PIL
  // uses them. A warning (e.g. extra bytes after the image) is not an error; PIL ignores it too.
  if (tjDecompress2(handle, data, static_cast<unsigned long>(size), decoded.data(), width, 0,
                    height, format, 0) != 0) {
    QNN_CHECK(tjGetErrorCode(handle) == TJERR_WARNING, "cannot decode ", name,
              " (TurboJPEG): ", tjGetErrorStr2(handle));
    // TurboJPEG still says "warning" when a fatal error follows the warning and stops the decode
    // half done; its message is then the fatal error's, where after warnings alone it is the
    // first warning's. A decode that stops at the first warning tells which.
    const std::string message = tjGetErrorStr2(handle);
    std::vector<uint8_t> scratch(decoded.size());
    tjDecompress2(handle, data, static_cast<unsigned long>(size), scratch.data(), width, 0, height, format,
                  TJFLAG_STOPONWARNING);
    QNN_CHECK(message == tjGetErrorStr2(handle), "cannot decode ", name, " (TurboJPEG): ", message);
  }
  RgbImage image;
  image.height = height;
  image.width = width;
  if (!cmyk) {
    image.pixels = std::move(decoded);
    return image;
  }
  // Stored CMYK values are Adobe-inverted: R = C' K' / 255, rounded.
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (size_t p = 0, n = static_cast<size_t>(width) * height; p < n; ++p) {
    const unsigned k = decoded[4 * p + 3];
    for (int c = 0; c < 3; ++c) image.pixels[3 * p + c] = static_cast<uint8_t>((decoded[4 * p + c] * k + 127) / 255);
  }
  return image;
}
#endif

}  // namespace

bool turbojpeg_available() {
#ifdef QNN_TURBOJPEG
  return true;
#else
  return false;
#endif
}

const char* jpeg_decoder_name(ImageDecoder decoder) {
  if (decoder == ImageDecoder::stb) return "stb";
  if (decoder == ImageDecoder::turbojpeg) return "turbojpeg";
  return turbojpeg_available() ? "turbojpeg" : "stb";
}

RgbImage decode_image_bytes(const uint8_t* data, size_t size, const std::string& name,
                            ImageDecoder decoder) {
  QNN_CHECK(size > 0, "cannot decode ", name, ": the file is empty");
  QNN_CHECK(decoder != ImageDecoder::turbojpeg || turbojpeg_available(), "cannot decode ", name,
            " with TurboJPEG: this build has no TurboJPEG (install libturbojpeg0-dev and rebuild)");
  const bool turbojpeg = turbojpeg_available() && decoder != ImageDecoder::stb && is_jpeg(data, size);
  const std::string fault = image_structure_fault(
      data, size, turbojpeg ? MissingHuffmanTables::standard : MissingHuffmanTables::refused);
  QNN_CHECK(fault.empty(), "cannot decode ", name, ": ", fault);
#ifdef QNN_TURBOJPEG
  if (turbojpeg) return decode_with_turbojpeg(data, size, name);
#endif
  return decode_with_stb(data, size, name);
}

RgbImage decode_image_file(const std::string& path, ImageDecoder decoder) {
  std::ifstream file(path, std::ios::binary);
  QNN_CHECK(file.good(), "cannot open image ", path, ": ", std::strerror(errno));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  QNN_CHECK(!file.bad(), "cannot read image ", path, ": ", std::strerror(errno));
  return decode_image_bytes(bytes.data(), bytes.size(), path, decoder);
}

}  // namespace qnn
