// JSON from untrusted files (model files, safetensors headers, index files): parsed with a bound
// on nesting, so that no later walk or print of a value recurses without limit, and with errors
// that say what is wrong without the JSON library's internal tags.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shardalg/core/error.hpp"

namespace shardalg {

// Deepest nesting of arrays and objects accepted: the formats read need 4.
inline constexpr std::size_t json_max_depth = 64;

// A JSON library error's message without its tag: what() is "[json.exception.parse_error.101]
// parse error at line 1, ...", the part after "] " says what went wrong.
inline std::string_view json_error_text(const nlohmann::json::exception& e) {
  std::string_view message = e.what();
  std::size_t tag_end = message.find("] ");
  if (message.starts_with("[json.exception.") && tag_end != std::string_view::npos) message.remove_prefix(tag_end + 2);
  return message;
}

// The JSON value of `text`; ErrorType names `what` and the problem otherwise.
// Pre: none (any bytes). Post: the value nests at most json_max_depth deep.
// Example: parse_untrusted_json<ParseError>("[[1]]", "f.json") gives [[1]];
// 100,000 '[' fail with "f.json: JSON nests deeper than 64 levels (at byte 64)".
template <class ErrorType = FormatError>
nlohmann::json parse_untrusted_json(std::string_view text, std::string_view what) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > json_max_depth) detail::fail<ErrorType>(what, ": JSON nests deeper than ", json_max_depth, " levels (at byte ", i, ")");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    detail::fail<ErrorType>(what, " is not valid JSON: ", json_error_text(e));
  }
}

// A JSON value as an error shows it: compact, echoed (one line, at most detail::echo_limit characters).
inline std::string json_excerpt(const nlohmann::json& value) { return detail::echoed(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)); }

}  // namespace shardalg
