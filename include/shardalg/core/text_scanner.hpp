// A small scanner for the library's text forms (mesh specs, placements, device lists).
// Errors name the whole input and the position where reading failed.
#pragma once

#include <cctype>
#include <charconv>
#include <string>
#include <string_view>
#include <utility>

#include "shardalg/core/checked.hpp"

namespace shardalg::detail {

class Scanner {
 public:
  Scanner(std::string_view text, std::string_view what) : text_(text), what_(what) {}

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool at_end() {
    skip_space();
    return pos_ >= text_.size();
  }
  char peek() {
    skip_space();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  // Consumes `token` if it comes next (after spaces).
  bool accept(std::string_view token) {
    skip_space();
    if (text_.substr(pos_, token.size()) != token) return false;
    pos_ += token.size();
    return true;
  }
  void expect(std::string_view token) {
    if (!accept(token)) fail_here("expected '", token, "'");
  }
  // A (possibly negative) decimal integer that fits in int64.
  index_t integer() {
    skip_space();
    std::size_t start = pos_;
    if (pos_ < text_.size() && (text_[pos_] == '-' || text_[pos_] == '+')) ++pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    std::string_view digits = text_.substr(start, pos_ - start);
    if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
    index_t value = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size()) {
      pos_ = start;
      if (error == std::errc::result_out_of_range)
        fail<OverflowError>(what_, " '", text_, "': integer '", digits, "' does not fit in int64");
      fail_here("expected an integer");
    }
    return value;
  }
  // A name: letters, digits and '_' , starting with a letter or '_'.
  std::string identifier() {
    skip_space();
    std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    if (start == pos_ || std::isdigit(static_cast<unsigned char>(text_[start]))) {
      pos_ = start;
      fail_here("expected a name");
    }
    return std::string(text_.substr(start, pos_ - start));
  }
  // Where reading stands, to look ahead and come back.
  std::size_t position() const { return pos_; }
  void rewind(std::size_t position) { pos_ = position; }
  void expect_end() {
    if (!at_end()) fail_here("unexpected text");
  }
  // Throws ParseError naming the text, the problem (its parts joined as fail joins them) and the position.
  template <class... Problem>
  [[noreturn]] void fail_here(Problem&&... problem) {
    fail<ParseError>(what_, " '", text_, "': ", std::forward<Problem>(problem)..., " at position ", pos_);
  }

 private:
  std::string_view text_;
  std::string_view what_;
  std::size_t pos_ = 0;
};

}  // namespace shardalg::detail
