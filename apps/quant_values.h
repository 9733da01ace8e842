// The numbers ./apps/quant quantizes, parsed from its command line or standard input: every
// word must be one finite float, written as strtof reads it ("0.25", "-1e-3", "0x1p-4").
// A quantizer propagates NaN and infinities (quant/quantizer.h), but a user who types them has
// made a mistake, so here they are errors, as is a number beyond the float range (1e39 would
// silently become an infinity). Numbers below the smallest float round to it or to 0, as any
// float literal does. Kept in a header of its own so that tests and fuzzers can call it.
#pragma once
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensor/check.h"

namespace qnn {

// 'word' for a message, with control characters (an embedded NUL would end the message) and
// bytes beyond ASCII written as \xNN.
inline std::string quoted_value(const std::string& word) {
  static const char* hex = "0123456789abcdef";
  std::string out = "'";
  for (char ch : word) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f) out += ch;
    else out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
  }
  return out + "'";
}

// The float `word` spells, or a qnn::Error whose message names the word (without the function
// prefix of QNN_CHECK: the app shows it to the user as it is):
//   value 'x' is not a number          (empty, leading space, trailing characters, embedded NUL;
//                                       control characters are shown as \xNN)
//   value 'nan' is not a finite number (nan, inf, infinity, with any sign or case)
//   value '1e39' is out of float range (a finite number whose magnitude rounds beyond 3.4e38)
inline float parse_quant_value(const std::string& word) {
  const char* begin = word.c_str();
  char* end = nullptr;
  errno = 0;
  const float value = word.empty() || std::isspace(static_cast<unsigned char>(word[0])) ? 0.0f : std::strtof(begin, &end);
  const bool overflow = errno == ERANGE && std::isinf(value);
  if (end == nullptr || end == begin || end != begin + word.size())
    throw Error("value " + quoted_value(word) + " is not a number");
  if (overflow)
    throw Error("value " + quoted_value(word) + " is out of float range (the largest float is 3.40282347e+38)");
  if (!std::isfinite(value)) throw Error("value " + quoted_value(word) + " is not a finite number");
  return value;
}

// Every word parsed by parse_quant_value, in order; the first bad word throws.
inline std::vector<float> parse_quant_values(const std::vector<std::string>& words) {
  std::vector<float> values;
  values.reserve(words.size());
  for (const std::string& word : words) values.push_back(parse_quant_value(word));
  return values;
}

}  // namespace qnn
