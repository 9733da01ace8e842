// Error reporting for the whole library. Every failed check throws qnn::Error with a message
// that starts with the function that failed, e.g. "[conv2d] input has 3 channels, weight expects 16",
// so a user sees what was expected and what was found. Nothing in the library prints or exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace qnn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: str("expected ", 3, " found ", 4).
template <class... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  return os.str();
}

}  // namespace qnn

// QNN_CHECK(cond, "what was expected", value, ...): throws qnn::Error("[function] message").
#define QNN_CHECK(cond, ...)                                                          \
  do {                                                                                \
    if (!(cond)) throw ::qnn::Error(::qnn::str("[", __func__, "] ", __VA_ARGS__));    \
  } while (0)
