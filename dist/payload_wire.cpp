// Payload wire format: see dist/payload_wire.h.
#include "dist/payload_wire.h"

#include <cstring>

#include "tensor/check.h"

namespace qnn {

namespace {

constexpr uint32_t kMagic = 0x504E4E51;  // "QNNP" little-endian
constexpr uint32_t kVersion = 1;
constexpr size_t kSchemeBytes = 16;

int64_t index_words(int64_t index_bits, int64_t coded) { return (index_bits * coded + 63) / 64; }

template <typename T>
void put(Bytes& out, const T& v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <typename T>
void put_array(Bytes& out, const std::vector<T>& v) {
  const size_t at = out.size();
  out.resize(at + v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data() + at, v.data(), v.size() * sizeof(T));
}

struct Reader {
  const Bytes& bytes;
  size_t& at;
  const std::string& sender;
  void need(size_t n, const char* what) {
    QNN_CHECK(bytes.size() >= at && bytes.size() - at >= n, sender, "'s payload is truncated: ", what, " needs ", n,
              " bytes at offset ", at, ", the message has ", bytes.size());
  }
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  template <typename T>
  void get_array(std::vector<T>& v, int64_t count, const char* what) {
    QNN_CHECK(count >= 0 && uint64_t(count) <= (bytes.size() - at) / sizeof(T), sender, "'s payload: ", what, " count ",
              count, " does not fit in the ", bytes.size() - at, " bytes left of the message");
    v.resize(size_t(count));
    if (count) std::memcpy(v.data(), bytes.data() + at, size_t(count) * sizeof(T));
    at += size_t(count) * sizeof(T);
  }
};

}  // namespace

int64_t payload_wire_bytes(const Payload& p) {
  return kPayloadHeaderBytes + 4 * int64_t(p.scales.size() + p.levels.size() + p.passthrough.size()) +
         8 * int64_t(p.indices.size());
}

void write_payload(const Payload& p, Bytes& out) {
  QNN_CHECK(p.scheme.size() < kSchemeBytes, "scheme name '", p.scheme, "' is longer than ", kSchemeBytes - 1, " characters");
  const int64_t coded = p.size - int64_t(p.passthrough.size()) + p.extra_indices;
  QNN_CHECK(int64_t(p.indices.size()) == (p.index_bits > 0 ? index_words(p.index_bits, coded) : 0),
            "payload of scheme '", p.scheme, "' holds ", p.indices.size(), " index words for ", coded, " indices of ",
            p.index_bits, " bits");
  out.reserve(out.size() + size_t(payload_wire_bytes(p)));
  put(out, kMagic);
  put(out, kVersion);
  char scheme[kSchemeBytes] = {};
  std::memcpy(scheme, p.scheme.data(), p.scheme.size());
  for (char c : scheme) put(out, c);
  for (int64_t v : {p.size, p.bucket_size, int64_t(p.index_bits), p.first_index, p.extra_indices, int64_t(p.seed),
                    int64_t(p.step), int64_t(p.scales.size()), int64_t(p.levels.size()), int64_t(p.passthrough.size()),
                    int64_t(p.indices.size())})
    put(out, v);
  put_array(out, p.scales);
  put_array(out, p.levels);
  put_array(out, p.passthrough);
  put_array(out, p.indices);
}

Payload read_payload(const Bytes& message, size_t& offset, const PayloadExpectation& expected, const std::string& sender) {
  Reader r{message, offset, sender};
  const uint32_t magic = r.get<uint32_t>("the magic number");
  QNN_CHECK(magic == kMagic, sender, "'s message is not a qnn payload: magic ", magic, ", expected ", kMagic, " (\"QNNP\")");
  const uint32_t version = r.get<uint32_t>("the version");
  QNN_CHECK(version == kVersion, sender, "'s payload has format version ", version, ", this build reads ", kVersion);
  char scheme[kSchemeBytes];
  for (char& c : scheme) c = r.get<char>("the scheme name");
  size_t length = 0;
  while (length < kSchemeBytes && scheme[length] != 0) ++length;
  for (size_t i = length; i < kSchemeBytes; ++i)
    QNN_CHECK(scheme[i] == 0, sender, "'s payload: the scheme name is not NUL-terminated and NUL-padded");
  Payload p;
  p.scheme.assign(scheme, length);
  int64_t f[11];
  for (int64_t& v : f) v = r.get<int64_t>("the header");
  p.size = f[0], p.bucket_size = f[1], p.first_index = f[3], p.extra_indices = f[4];
  p.seed = uint64_t(f[5]), p.step = uint64_t(f[6]);
  QNN_CHECK(expected.scheme.empty() || p.scheme == expected.scheme, sender, "'s payload was encoded by scheme '",
            p.scheme, "', this rank decodes '", expected.scheme, "': every rank must run the same --quant");
  QNN_CHECK(expected.size < 0 || p.size == expected.size, sender, "'s payload holds ", p.size, " coordinates, expected ",
            expected.size, ": the ranks' models or chunks differ");
  QNN_CHECK(expected.first_index < 0 || p.first_index == expected.first_index, sender, "'s payload starts at coordinate ",
            p.first_index, ", expected ", expected.first_index);
  QNN_CHECK(expected.step < 0 || f[6] == expected.step, sender, "'s payload is of step ", f[6], ", this rank is at step ",
            expected.step, ": the ranks are out of step");
  // Sizes stay far from int64's limits (2^40 coordinates is 4 TB of floats), so the index
  // arithmetic below cannot overflow.
  constexpr int64_t kMaxCoordinates = int64_t(1) << 40;
  QNN_CHECK(p.size >= 0 && p.size <= kMaxCoordinates && f[1] >= 1, sender, "'s payload header: size ", p.size,
            " (expected 0..2^40), bucket size ", f[1]);
  QNN_CHECK(f[2] >= 0 && f[2] <= 32, sender, "'s payload header: index width ", f[2], " bits, expected 0..32");
  p.index_bits = int(f[2]);
  QNN_CHECK(f[9] >= 0 && f[9] <= p.size && f[4] >= 0 && f[4] <= kMaxCoordinates, sender, "'s payload header: ", f[9], " passthrough coordinates and ",
            f[4], " extra indices for ", p.size, " coordinates");
  const int64_t coded = p.size - f[9] + f[4];
  const int64_t words = p.index_bits > 0 ? index_words(p.index_bits, coded) : 0;
  QNN_CHECK(f[10] == words, sender, "'s payload header: ", f[10], " index words, but ", coded, " indices of ",
            p.index_bits, " bits take ", words);
  if (const Payload* l = expected.layout) {
    const int64_t mine[] = {l->bucket_size, l->index_bits, int64_t(l->scales.size()), int64_t(l->levels.size()),
                            int64_t(l->passthrough.size()), l->extra_indices, int64_t(l->indices.size()), l->first_index};
    const int64_t theirs[] = {f[1], f[2], f[7], f[8], f[9], f[4], f[10], f[3]};
    const char* names[] = {"bucket size", "index width", "scale count", "level count", "passthrough count",
                           "extra index count", "index word count", "first index"};
    for (int k = 0; k < 8; ++k)
      QNN_CHECK(mine[k] == theirs[k], sender, "'s payload has ", names[k], " ", theirs[k], ", this rank's has ", mine[k],
                ": the ranks quantize with different settings (every rank must get the same --quant flags)");
  }
  r.get_array(p.scales, f[7], "scale");
  r.get_array(p.levels, f[8], "level");
  r.get_array(p.passthrough, f[9], "passthrough");
  r.get_array(p.indices, f[10], "index word");
  return p;
}

}  // namespace qnn
