// What makes image bytes unreadable before a decoder sees them (data/image_decode.h runs this in
// front of both of its decoders, so that they give the same answer and neither meets input it
// mishandles).
//
// JPEG (ITU T.81), read as a decoder reads it: after the start-of-image marker (FF D8), marker
// segments (FF, the marker byte, then a two-byte big-endian length that counts itself); each
// start-of-scan segment (SOS: FF DA) is followed by entropy-coded data, in which FF 00 is a
// stuffed FF byte and FF D0..D7 a restart marker, and any other FF xx is the next marker; the
// end-of-image marker (EOI: FF D9) ends the image. Stray bytes between segments and FF fill
// bytes before a marker are skipped, as libjpeg skips them. Refused:
//   - data that runs out before EOI: a truncated file. PIL refuses it ("image file is
//     truncated"), as stb_image does; libjpeg-turbo would only warn and fill the missing rows
//     with grey. Bytes after EOI are ignored, as PIL ignores them;
//   - a Huffman table (in a DHT segment: FF C4) of more than 256 codes (B.2.4.2), code lengths
//     that no prefix code has (more codes of up to l bits than l bits hold, the all-ones code
//     excluded, C.2), or tables that do not add up to their segment exactly; and a marker segment
//     whose length is below 2;
//   - a scan that decodes with a Huffman table the file has not defined before it, or whose
//     start-of-scan segment's length does not match its component count. libjpeg-turbo (and so
//     PIL) decodes a scan with tables 0 and 1 undefined with the standard tables of T.81 K.3,
//     as motion-JPEG frames, which carry none, need: MissingHuffmanTables says whether the
//     decoder that follows does.
// libjpeg rejects all of these; stb_image 2.27 reads past its tables, or reads tables it never
// filled, on the Huffman faults (found by fuzz/fuzz_image.cpp).
//
// PNG (ISO/IEC 15948): the 8-byte signature, then chunks (a four-byte big-endian data length, a
// four-byte type, the data, a four-byte CRC) up to IEND. Refused: a chunk before IEND that runs
// past the end of the data (a truncated file, which PIL refuses too; stb_image would first
// allocate the length a damaged chunk claims, up to 2 GB), and data that ends without IEND
// (which stb_image cannot decode and PIL decodes).
//
// Binary PNM (P5 grey, P6 RGB: "P6", then width, height and maximum value in decimal, separated
// by white space and # comments): a width or height above 2^24 (stb_image's limit) or a maximum
// value above 65535 is refused before stb_image reads the numbers into an int that overflows.
//
// Other formats, and other faults, are left to the decoders, which name them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qnn {

// Whether the JPEG decoder that follows decodes a scan whose Huffman table 0 or 1 the file does
// not define: with the standard tables (libjpeg-turbo), or not at all (stb_image, which would
// read a table it never filled).
enum class MissingHuffmanTables { standard, refused };

// Why the bytes cannot be decoded, as a phrase ("the JPEG data ends before ..."), or "" when
// nothing here rules them out.
std::string image_structure_fault(const uint8_t* data, size_t size, MissingHuffmanTables missing);

}  // namespace qnn
