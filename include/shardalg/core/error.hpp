// Errors raised by shardalg. Every error names the offending value.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
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

// Throws ErrorType with the concatenated message. Marked cold: error paths stay out of hot loops.
template <class ErrorType = Error, class... Parts>
[[noreturn]] [[gnu::cold]] void fail(Parts&&... parts) {
  throw ErrorType(concat(std::forward<Parts>(parts)...));
}

}  // namespace detail
}  // namespace shardalg
