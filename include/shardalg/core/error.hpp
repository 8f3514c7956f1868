// Errors raised by shardalg. Every error names the offending value.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace shardalg {

// Base of every exception the library throws: bad input, never a crash or a wrong answer.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An int64 computation (an element count, an offset) left the representable range.
class OverflowError : public Error {
 public:
  using Error::Error;
};

// A text form (mesh spec, placement, device list, shape) could not be read.
class ParseError : public Error {
 public:
  using Error::Error;
};

// A file's contents could not be read as its format (a malformed header, a refused pickle, a
// truncated archive): the input is unreadable, as opposed to readable but inconsistent.
class FormatError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

// Values longer than this many characters are cut when echoed in an error.
inline constexpr std::size_t echo_limit = 200;

// A run-time string as an error shows it: on one line, control characters written as \n, \t,
// \r or \xHH. Backslashes stay as they are, so escaping an escaped message changes nothing.
inline std::string escaped(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (byte < 0x20 || byte == 0x7f) out += {'\\', 'x', hex[byte >> 4], hex[byte & 15]};
    else out += c;
  }
  return out;
}

// A value as an error shows it: escaped, and when longer than `echo_limit` characters its first
// half of that, then how long it was.
// Example: echoed("a\nb") is `a\nb`; a 10,000-character value shows its first 100 characters,
// then "... (10000 characters)".
inline std::string echoed(std::string_view value) {
  if (value.size() <= echo_limit) return escaped(value);
  return concat(escaped(value.substr(0, echo_limit / 2)), "... (", value.size(), " characters)");
}

// An error message's part: strings (values, names, paths) are echoed; C strings, which carry
// nested messages (what() of a caught error), are escaped whole; literals, numbers and printable
// objects go as they are.
template <class Part>
decltype(auto) message_part(Part&& part) {
  using Plain = std::remove_cvref_t<Part>;
  if constexpr (std::is_same_v<Plain, std::string> || std::is_same_v<Plain, std::string_view>)
    return echoed(part);
  else if constexpr (std::is_same_v<Plain, const char*> || std::is_same_v<Plain, char*>)
    return escaped(part);
  else
    return std::forward<Part>(part);
}

// Throws ErrorType with the concatenated message, every run-time string in it echoed (one line,
// bounded). Marked cold: error paths stay out of hot loops.
template <class ErrorType = Error, class... Parts>
[[noreturn]] [[gnu::cold]] void fail(Parts&&... parts) {
  throw ErrorType(concat(message_part(std::forward<Parts>(parts))...));
}

}  // namespace detail
}  // namespace shardalg
