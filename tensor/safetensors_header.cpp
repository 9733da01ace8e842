// A recursive-descent reader and a writer for the JSON subset of safetensors headers.
//
// The reader walks the text once with a cursor `pos_`. Each parse_* method consumes one JSON
// construct and leaves the cursor just after it; any surprise calls fail(), which names the
// byte and what was found there. See safetensors_header.h for the grammar accepted.
#include "tensor/safetensors_header.h"

#include <cstdio>
#include <limits>
#include <set>

namespace qnn {
namespace {

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& file) : s_(text), file_(file) {}

  SafetensorsHeader parse() {
    SafetensorsHeader header;
    std::set<std::string> names;
    bool have_metadata = false;
    parse_object([&](const std::string& key) {
      if (key == "__metadata__") {
        if (have_metadata) fail_at(key_pos_, "one \"__metadata__\" entry", "a second one");
        have_metadata = true;
        header.metadata = parse_metadata();
        return;
      }
      if (!names.insert(key).second)
        fail_at(key_pos_, "unique tensor names", "a second tensor named '" + key + "'");
      header.entries.push_back(parse_entry(key));
    });
    skip_space();
    if (pos_ != s_.size()) fail("the end of the header after the top-level object");
    return header;
  }

 private:
  const std::string& s_;
  const std::string& file_;
  size_t pos_ = 0;
  size_t key_pos_ = 0;  // where the key most recently read by parse_object starts

  [[noreturn]] void fail_at(size_t pos, const std::string& expected, const std::string& found) const {
    throw Error(str("[load_safetensors] ", file_, ": header JSON at byte ", pos, ": expected ",
                    expected, ", found ", found));
  }
  [[noreturn]] void fail(const std::string& expected) const { fail_at(pos_, expected, here()); }

  // A short description of the character under the cursor, for error messages.
  std::string here() const {
    if (pos_ >= s_.size()) return "the end of the header";
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c >= 0x20 && c < 0x7f) return str("'", static_cast<char>(c), "'");
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", c);
    return str("byte ", hex);
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(str("'", c, "'"));
    ++pos_;
  }

  // { "key": <value>, ... } -- calls on_member(key) with the cursor on the value, which the
  // callback must consume.
  template <class OnMember>
  void parse_object(OnMember&& on_member) {
    expect('{');
    if (peek('}')) {
      ++pos_;
      return;
    }
    while (true) {
      skip_space();
      key_pos_ = pos_;
      const std::string key = parse_string();
      expect(':');
      on_member(key);
      if (peek(',')) {
        ++pos_;
        continue;
      }
      if (peek('}')) {
        ++pos_;
        return;
      }
      fail("',' or '}'");
    }
  }

  std::string parse_string() {
    if (!peek('"')) fail("a string");
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("a closing '\"'");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("a string character (control characters must be escaped)");
      if (c != '\\') {
        out += c;
        ++pos_;
        continue;
      }
      ++pos_;  // the backslash
      if (pos_ >= s_.size()) fail("an escape character");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': append_utf8(out, parse_unicode_escape()); break;
        default: --pos_; fail("one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\'");
      }
    }
  }

  // The code point of \uXXXX (cursor just after the 'u'), joining a UTF-16 surrogate pair.
  uint32_t parse_unicode_escape() {
    uint32_t code = parse_hex4();
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (s_.compare(pos_, 2, "\\u") != 0) fail("a second \\uXXXX completing a surrogate pair");
      pos_ += 2;
      const uint32_t low = parse_hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail_at(pos_ - 6, "a low surrogate (\\uDC00-\\uDFFF)", "another code unit");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    } else if (code >= 0xDC00 && code <= 0xDFFF) {
      fail_at(pos_ - 6, "a high surrogate (\\uD800-\\uDBFF) before a low one", "a lone low surrogate");
    }
    return code;
  }
  uint32_t parse_hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (pos_ >= s_.size()) fail("four hex digits after \\u");
      const char c = s_[pos_];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("four hex digits after \\u");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A non-negative integer written as plain digits (no sign, fraction or exponent).
  int64_t parse_integer() {
    skip_space();
    const size_t start = pos_;
    int64_t v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const int d = s_[pos_] - '0';
      if (v > (std::numeric_limits<int64_t>::max() - d) / 10) fail_at(start, "an integer below 2^63", "a larger one");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ == start) fail("a non-negative integer");
    if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E'))
      fail("an integer (no fraction or exponent)");
    return v;
  }

  std::vector<int64_t> parse_integer_array() {
    expect('[');
    std::vector<int64_t> values;
    if (peek(']')) {
      ++pos_;
      return values;
    }
    while (true) {
      values.push_back(parse_integer());
      if (peek(',')) {
        ++pos_;
        continue;
      }
      if (peek(']')) {
        ++pos_;
        return values;
      }
      fail("',' or ']'");
    }
  }

  std::map<std::string, std::string> parse_metadata() {
    std::map<std::string, std::string> metadata;
    parse_object([&](const std::string& key) {
      const size_t at = key_pos_;
      if (!metadata.emplace(key, parse_string()).second)
        fail_at(at, "unique metadata keys", "a second \"" + key + "\"");
    });
    return metadata;
  }

  SafetensorsEntry parse_entry(const std::string& name) {
    SafetensorsEntry entry;
    entry.name = name;
    const size_t start = pos_;
    bool have_dtype = false, have_shape = false, have_offsets = false;
    parse_object([&](const std::string& key) {
      const size_t at = key_pos_;
      auto once = [&](bool& seen) {
        if (seen) fail_at(at, "each of dtype, shape, data_offsets once", "a second \"" + key + "\"");
        seen = true;
      };
      if (key == "dtype") {
        once(have_dtype);
        entry.dtype = parse_string();
      } else if (key == "shape") {
        once(have_shape);
        entry.shape = parse_integer_array();
      } else if (key == "data_offsets") {
        once(have_offsets);
        const size_t offsets_at = pos_;
        const std::vector<int64_t> offsets = parse_integer_array();
        if (offsets.size() != 2)
          fail_at(offsets_at, "data_offsets as [begin, end]", str(offsets.size(), " numbers"));
        entry.begin = offsets[0];
        entry.end = offsets[1];
      } else {
        fail_at(at, "\"dtype\", \"shape\" or \"data_offsets\"", "\"" + key + "\"");
      }
    });
    const char* missing = !have_dtype ? "dtype" : !have_shape ? "shape" : !have_offsets ? "data_offsets" : nullptr;
    if (missing) fail_at(start, str("a \"", missing, "\" in the entry of tensor '", name, "'"), "none");
    return entry;
  }
};

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", u);
      out += esc;
    } else {
      out += c;  // UTF-8 bytes pass through unchanged
    }
  }
  out += '"';
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const std::string& json, const std::string& file) {
  return HeaderParser(json, file).parse();
}

std::string format_safetensors_header(const SafetensorsHeader& header) {
  std::string out = "{";
  if (!header.metadata.empty()) {
    out += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : header.metadata) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, key);
      out += ':';
      append_json_string(out, value);
    }
    out += '}';
  }
  for (const SafetensorsEntry& e : header.entries) {
    if (out.size() > 1) out += ',';
    append_json_string(out, e.name);
    out += ":{\"dtype\":";
    append_json_string(out, e.dtype);
    out += ",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) out += str(i ? "," : "", e.shape[i]);
    out += str("],\"data_offsets\":[", e.begin, ",", e.end, "]}");
  }
  out += '}';
  return out;
}

}  // namespace qnn
