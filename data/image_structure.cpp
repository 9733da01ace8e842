// The structure checks of image bytes before decoding (see data/image_structure.h).
#include "data/image_structure.h"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "tensor/check.h"

namespace qnn {

namespace {

// Where JPEG data starts after its start-of-image marker (FF D8), 0 when it has none. stb_image
// also takes FF fill bytes before it (libjpeg does not), so they are allowed here.
size_t jpeg_body(const uint8_t* data, size_t size) {
  size_t p = 0;
  while (p < size && data[p] == 0xFF) ++p;
  return p > 0 && p < size && data[p] == 0xD8 ? p + 1 : 0;
}

bool is_restart(uint8_t marker) { return marker >= 0xD0 && marker <= 0xD7; }

// The position of the first FF byte at or after p (size when none): memchr, since entropy-coded
// data is most of a JPEG.
size_t next_ff(const uint8_t* data, size_t size, size_t p) {
  if (p >= size) return size;
  const void* found = std::memchr(data + p, 0xFF, size - p);
  return found ? static_cast<size_t>(static_cast<const uint8_t*>(found) - data) : size;
}

// What the segments read so far say about the Huffman tables a scan may use.
struct HuffmanState {
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][id]
  int frame = 0;            // the start-of-frame marker: C0, C1 (sequential), C2 (progressive), ...
  MissingHuffmanTables missing = MissingHuffmanTables::refused;
};

// The fault of the Huffman tables of a DHT segment (`length` bytes from `segment`, its length
// field included), "" when they are sound; records the tables it defines. Each table: a byte of
// class (0 DC, 1 AC) and id (0..3), the counts of the codes of 1 to 16 bits, then its symbols.
// The codes are canonical: those of length l follow the shorter ones, so the lengths make a
// table exactly when the codes up to length l leave the all-ones l-bit code unused (libjpeg's
// jpeg_make_d_derived_tbl).
std::string huffman_fault(const uint8_t* segment, size_t length, size_t offset, HuffmanState& state) {
  const std::string where = str("the DHT segment at byte ", offset);
  size_t t = 2;
  while (length - t >= 17) {
    const int table_class = segment[t] >> 4, id = segment[t] & 15;
    if (table_class > 1 || id > 3)
      return str("a Huffman table (", where, ") of class ", table_class, " and id ", id,
                 ": a JPEG has classes 0 and 1 and ids 0 to 3");
    const uint8_t* counts = segment + t + 1;  // counts[l - 1]: the codes of l bits
    uint32_t codes = 0, next = 0;             // next: the first unused l-bit code
    for (int l = 1; l <= 16; ++l) {
      codes += counts[l - 1];
      next += counts[l - 1];
      if (counts[l - 1] > 0 && next >= (uint32_t{1} << l))
        return str("a Huffman table (", where, ") has code lengths no prefix code has (too many codes of ", l,
                   l == 1 ? " bit" : " bits", " or fewer; a corrupt JPEG)");
      next <<= 1;
    }
    if (codes > 256)
      return str("a Huffman table (", where, ") defines ", codes, " codes, more than the 256 a JPEG allows");
    if (length - t - 17 < codes) break;
    state.defined[table_class][id] = true;
    t += 17 + codes;
  }
  if (t != length) return str("the Huffman tables of ", where, " do not add up to its ", length, " bytes (a corrupt JPEG)");
  return "";
}

// The fault of a start-of-scan segment (`length` bytes from `segment`): its length is 6 bytes
// and 2 a component, and in a Huffman-coded frame every table its components decode with has
// been defined (or, with MissingHuffmanTables::standard, is table 0 or 1). A sequential scan
// uses each component's DC and AC tables; a progressive scan its DC tables when it is the first
// DC scan (spectral start 0, no successive approximation high bit), its AC tables when it is an
// AC scan, and none when it refines DC.
std::string scan_fault(const uint8_t* segment, size_t length, size_t offset, const HuffmanState& state) {
  const int components = length >= 3 ? segment[2] : 0;
  if (components < 1 || components > 4 || length != 6 + 2 * size_t(components))
    return str("the start-of-scan segment at byte ", offset, " has ", length, " bytes for ", components,
               " components (a corrupt JPEG)");
  if (state.frame < 0xC0 || state.frame > 0xC2) return "";  // not a Huffman-coded frame this checks
  const int spectral_start = segment[3 + 2 * components], high_bit = segment[5 + 2 * components] >> 4;
  const bool progressive = state.frame == 0xC2;
  const bool uses_dc = !progressive || (spectral_start == 0 && high_bit == 0);
  const bool uses_ac = !progressive || spectral_start > 0;
  for (int c = 0; c < components; ++c) {
    const int dc = segment[4 + 2 * c] >> 4, ac = segment[4 + 2 * c] & 15;
    for (const auto& [table_class, id, used] : {std::tuple{0, dc, uses_dc}, std::tuple{1, ac, uses_ac}}) {
      const bool standard = state.missing == MissingHuffmanTables::standard && id <= 1;
      if (used && (id > 3 || (!state.defined[table_class][id] && !standard)))
        return str("the scan at byte ", offset, " decodes with ", table_class == 0 ? "DC" : "AC",
                   " Huffman table ", id, ", which the file does not define before it",
                   id <= 1 ? " (TurboJPEG would use the standard table; stb_image cannot)" : " (a corrupt JPEG)");
    }
  }
  return "";
}

// The JPEG checks of data/image_structure.h, from just after the start-of-image marker.
std::string jpeg_structure_fault(const uint8_t* data, size_t size, size_t body, MissingHuffmanTables missing) {
  const std::string truncated = "the JPEG data ends before its end-of-image marker (a truncated file)";
  HuffmanState huffman;
  huffman.missing = missing;
  size_t p = body;
  while (true) {
    p = next_ff(data, size, p);               // past stray bytes
    while (p < size && data[p] == 0xFF) ++p;  // fill bytes
    if (p >= size) return truncated;
    const uint8_t marker = data[p++];
    if (marker == 0xD9) return "";
    if (marker == 0x01 || marker == 0xD8 || is_restart(marker)) continue;  // markers without a length
    if (size - p < 2) return truncated;
    const size_t length = static_cast<size_t>(data[p]) << 8 | data[p + 1];
    if (length < 2)
      return str("the marker segment at byte ", p - 2, " has a length of ", length, ", below 2 (a corrupt JPEG)");
    if (size - p < length) return truncated;
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC)
      huffman.frame = marker;  // a start of frame (C4 is DHT, C8 reserved, CC DAC)
    const std::string fault = marker == 0xC4   ? huffman_fault(data + p, length, p - 2, huffman)
                              : marker == 0xDA ? scan_fault(data + p, length, p - 2, huffman)
                                               : std::string();
    if (!fault.empty()) return fault;
    p += length;
    if (marker != 0xDA) continue;
    // Entropy-coded data, up to the FF of the next marker: FF bytes followed by 00 are one
    // stuffed FF, followed by D0..D7 a restart marker.
    while (true) {
      p = next_ff(data, size, p);
      size_t q = p;
      while (q < size && data[q] == 0xFF) ++q;
      if (q >= size) return truncated;
      if (data[q] != 0x00 && !is_restart(data[q])) break;
      p = q + 1;
    }
  }
}

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

uint32_t big_endian32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

// A PNG chunk type as it reads: four letters, or their bytes in hex when they are not letters.
std::string chunk_type(const uint8_t* type) {
  if (std::all_of(type, type + 4, [](uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }))
    return "'" + std::string(type, type + 4) + "'";
  return str("of type 0x", std::hex, big_endian32(type));
}

// The PNG checks of data/image_structure.h, from just after the signature.
std::string png_structure_fault(const uint8_t* data, size_t size) {
  size_t p = sizeof(kPngSignature);
  for (int chunk = 1; size - p >= 12; ++chunk) {
    const uint32_t length = big_endian32(data + p);
    if (size - p - 12 < size_t{length})
      return str("the PNG data ends inside its chunk ", chunk, " (", chunk_type(data + p + 4), ", ", length,
                 " bytes of data): a truncated or damaged file");
    if (std::equal(data + p + 4, data + p + 8, "IEND")) return "";
    p += 12 + size_t{length};
  }
  return "the PNG data ends before its IEND chunk (a truncated file)";
}

// The PNM checks of data/image_structure.h, from just after the two-byte magic number P5 or P6.
std::string pnm_structure_fault(const uint8_t* data, size_t size) {
  const auto space = [](uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  const char* const names[3] = {"width", "height", "maximum value"};
  const uint64_t limits[3] = {uint64_t{1} << 24, uint64_t{1} << 24, 65535};
  size_t p = 2;
  for (int k = 0; k < 3; ++k) {
    while (p < size && (space(data[p]) || data[p] == '#')) {  // white space and comments
      if (data[p] == '#')
        while (p < size && data[p] != '\n' && data[p] != '\r') ++p;
      else
        ++p;
    }
    const uint64_t huge = uint64_t{1} << 40;  // where counting stops
    uint64_t value = 0;
    for (; p < size && data[p] >= '0' && data[p] <= '9'; ++p) value = std::min(value * 10 + (data[p] - '0'), huge);
    if (value > limits[k])
      return str("the PNM header's ", names[k], " is ", value == huge ? "over 2^40" : std::to_string(value),
                 ", more than ", limits[k], " (a damaged file)");
  }
  return "";
}

}  // namespace

std::string image_structure_fault(const uint8_t* data, size_t size, MissingHuffmanTables missing) {
  if (const size_t body = jpeg_body(data, size)) return jpeg_structure_fault(data, size, body, missing);
  if (size >= sizeof(kPngSignature) && std::equal(kPngSignature, kPngSignature + 8, data))
    return png_structure_fault(data, size);
  if (size >= 2 && data[0] == 'P' && (data[1] == '5' || data[1] == '6')) return pnm_structure_fault(data, size);
  return "";
}

}  // namespace qnn
