// Quantizer state entries and their reader: see quant/quantizer_state.h.
#include "quant/quantizer_state.h"

#include <cmath>
#include <cstring>

#include "quant/quantizer.h"
#include "tensor/check.h"

namespace qnn {

void GradientQuantizer::load_state(const std::vector<NamedTensor>& state) {
  StateReader(state, "quantizer '" + name() + "'").finish();  // no state: any entry is unknown
}

namespace {

NamedTensor state_word(const std::string& name, uint64_t word) {
  std::vector<float> pieces(4);
  for (int k = 0; k < 4; ++k) pieces[size_t(k)] = float((word >> (16 * (3 - k))) & 0xffffu);
  return NamedTensor{name, Tensor::from_vector(pieces, {4}), true};
}

}  // namespace

NamedTensor state_floats(const std::string& name, const std::vector<float>& values) {
  return NamedTensor{name, Tensor::from_vector(values, {int64_t(values.size())}), false};
}

NamedTensor state_count(const std::string& name, int64_t count) {
  QNN_CHECK(count >= 0, "state entry '", name, "' must be a count >= 0, got ", count);
  return state_word(name, uint64_t(count));
}

NamedTensor state_real(const std::string& name, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return state_word(name, bits);
}

StateReader::StateReader(const std::vector<NamedTensor>& entries, std::string owner)
    : entries_(entries), owner_(std::move(owner)), read_(entries.size(), false) {
  for (size_t i = 0; i < entries_.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      QNN_CHECK(entries_[i].name != entries_[j].name, owner_, " state: two entries are named '", entries_[i].name, "'");
}

const NamedTensor& StateReader::entry(const std::string& name, int64_t size) {
  for (size_t i = 0; i < entries_.size(); ++i) {
    const NamedTensor& e = entries_[i];
    if (e.name != name) continue;
    QNN_CHECK(e.tensor.defined(), owner_, " state: entry '", name, "' holds no tensor");
    QNN_CHECK(e.tensor.shape() == Shape{size}, owner_, " state: entry '", name, "' has shape ",
              shape_str(e.tensor.shape()), ", expected [", size, "]");
    read_[i] = true;
    return e;
  }
  QNN_CHECK(false, owner_, " state: entry '", name, "' is missing");
  return entries_.front();  // not reached
}

std::vector<float> StateReader::floats(const std::string& name, int64_t count) {
  const std::vector<float> values = entry(name, count).tensor.to_vector();
  for (size_t i = 0; i < values.size(); ++i)
    QNN_CHECK(std::isfinite(values[i]), owner_, " state: entry '", name, "' holds ", values[i], " at index ", i,
              ", expected finite values");
  return values;
}

uint64_t StateReader::word(const std::string& name) {
  const std::vector<float> pieces = entry(name, 4).tensor.to_vector();
  uint64_t word = 0;
  for (size_t k = 0; k < 4; ++k) {
    const float p = pieces[k];
    QNN_CHECK(p >= 0.0f && p <= 65535.0f && p == std::floor(p), owner_, " state: entry '", name, "' holds ", p,
              " at index ", k, ", expected a whole number in 0..65535 (a 16-bit piece of a 64-bit word)");
    word = (word << 16) | uint64_t(p);
  }
  return word;
}

int64_t StateReader::count(const std::string& name, int64_t max) {
  const uint64_t w = word(name);
  QNN_CHECK(w <= uint64_t(max), owner_, " state: entry '", name, "' holds the count ", w, ", expected 0..", max);
  return int64_t(w);
}

double StateReader::real(const std::string& name) {
  const uint64_t w = word(name);
  double value;
  std::memcpy(&value, &w, sizeof value);
  QNN_CHECK(std::isfinite(value), owner_, " state: entry '", name, "' holds ", value, ", expected a finite number");
  return value;
}

void StateReader::finish() const {
  for (size_t i = 0; i < entries_.size(); ++i)
    QNN_CHECK(read_[i], owner_, " state: unknown entry '", entries_[i].name, "'");
}

}  // namespace qnn
