// libFuzzer target for the payload wire reader (dist/payload_wire.h): what one rank receives
// from another in the data-parallel gradient exchange.
//
// The input is a message: payloads back to back, as the exchange sends them. They are read until
// the message ends or the reader throws qnn::Error; each payload read must write back to exactly
// the bytes it was read from (the format has one encoding), and its arrays must match its header.
// Anything else (another exception, a crash, a sanitizer report, a mismatch) is a defect.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dist/payload_wire.h"
#include "tensor/check.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const qnn::Bytes message(data, data + size);
  size_t offset = 0;
  try {
    while (offset < message.size()) {
      const size_t start = offset;
      const qnn::Payload p = qnn::read_payload(message, offset, {}, "rank 1");
      require(offset > start && offset <= message.size());
      require(qnn::payload_wire_bytes(p) == int64_t(offset - start));
      require(int64_t(p.passthrough.size()) <= p.size && p.index_bits >= 0 && p.index_bits <= 32);
      qnn::Bytes again;
      qnn::write_payload(p, again);
      require(again.size() == offset - start);
      for (size_t i = 0; i < again.size(); ++i) require(again[i] == message[start + i]);
    }
  } catch (const qnn::Error&) {
  }
  return 0;
}
