// The wire format of a Payload (quant/payload.h): what one rank sends another in the gradient
// exchange (dist/exchange.h), and the byte count the exchange's figures are computed from.
//
// A message is one or more payloads back to back. Each payload is a fixed header followed by its
// arrays, every field little-endian (the hosts qnn runs on):
//
//   offset  bytes  field
//        0      4  magic "QNNP"
//        4      4  format version (1)
//        8     16  scheme name, NUL-padded ("exponential")
//       24   8x11  size, bucket_size, index_bits, first_index, extra_indices, seed, step,
//                  scale count S, level count L, passthrough count P, index word count W
//      112     4S  scales (float)
//              4L  levels (float)
//              4P  passthrough coordinates (float)
//              8W  bit-packed level indices (uint64), W = ceil(index_bits * (size - P + extra) / 64)
//
// so a payload takes  payload_wire_bytes = 112 + 4 (S + L + P) + 8 W  bytes: Payload::bits()
// rounded up to whole words, plus the header. The reader checks everything a decoder relies on
// (magic, version, counts against the length, the index width, the word count) and what the
// receiver expects (scheme, coordinates, first index, step), and reports a mismatch as a
// qnn::Error naming the sender, the field, what was expected and what was found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "quant/payload.h"

namespace qnn {

constexpr int64_t kPayloadHeaderBytes = 112;

// The bytes write_payload adds for `p`.
int64_t payload_wire_bytes(const Payload& p);
// Appends `p` to `out`.
void write_payload(const Payload& p, Bytes& out);

// What the receiver knows a payload must say; a negative number or an empty scheme is not checked.
// `layout`, when given, is a payload this rank encoded of the same coordinates with the same
// scheme: the received one must have its shape (bucket size, index width, and the counts of
// scales, levels, passthrough coordinates, extra indices and index words, and the first index,
// which schemes whose randomness is keyed by flat index record), which is what the decoder
// indexes by.
struct PayloadExpectation {
  std::string scheme;
  int64_t size = -1, first_index = -1, step = -1;
  const Payload* layout = nullptr;
};

// Reads the payload at `offset` of `message` (advancing offset past it). `sender` names where
// the message came from in errors ("rank 2").
Payload read_payload(const Bytes& message, size_t& offset, const PayloadExpectation& expected, const std::string& sender);

}  // namespace qnn
