// libFuzzer target for the parsing of the numbers ./apps/quant quantizes (apps/quant_values.h).
//
// The input is read twice, as the app gets its numbers: split at NUL bytes (command-line
// arguments) and split at whitespace (standard input, as `std::cin >> word` splits it). Plus
// the whole input as one word, embedded NULs and all. For every word, parse_quant_value must
// either return the finite float strtof reads from the whole word, or throw qnn::Error with a
// printable message naming it; parse_quant_values must fail exactly when one of its words does.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "apps/quant_values.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

// Checks one word; true when it was accepted (its value in `value`).
bool check_word(const std::string& word, float& value) {
  try {
    value = qnn::parse_quant_value(word);
  } catch (const qnn::Error& e) {
    const std::string message = e.what();
    require(message.rfind("value '", 0) == 0);
    for (const char c : message) require(c >= 0x20 && c < 0x7f);  // control bytes escaped
    require(ends_with(message, "' is not a number") || ends_with(message, "' is not a finite number") ||
            ends_with(message, "' is out of float range (the largest float is 3.40282347e+38)"));
    return false;
  }
  // Accepted: a finite float, exactly what strtof reads from the whole word.
  require(std::isfinite(value));
  require(!word.empty() && word.find('\0') == std::string::npos);
  char* end = nullptr;
  const float expected = std::strtof(word.c_str(), &end);
  require(end == word.c_str() + word.size());
  require(std::memcmp(&expected, &value, sizeof value) == 0);  // -0 stays -0
  return true;
}

void check_words(const std::vector<std::string>& words) {
  std::vector<float> each(words.size());
  bool all = true;
  for (size_t i = 0; i < words.size(); ++i) all = check_word(words[i], each[i]) && all;
  try {
    const std::vector<float> values = qnn::parse_quant_values(words);
    require(all && values.size() == words.size());
    for (size_t i = 0; i < values.size(); ++i) require(std::memcmp(&values[i], &each[i], sizeof(float)) == 0);
  } catch (const qnn::Error&) {
    require(!all);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  std::vector<std::string> arguments;
  size_t start = 0;
  while (start <= input.size() && !input.empty()) {
    const size_t nul = input.find('\0', start);
    arguments.push_back(input.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  check_words(arguments);

  std::vector<std::string> from_stdin;
  std::istringstream stream(input);
  for (std::string word; stream >> word;) from_stdin.push_back(word);
  check_words(from_stdin);

  float value = 0;
  check_word(input, value);
  return 0;
}
