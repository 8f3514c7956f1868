#include "../test_support.hpp"

#include "shardalg/storage/json_input.hpp"

using namespace shardalg;

TEST_CASE("untrusted JSON: nesting is bounded before parsing, brackets inside strings do not count") {
  std::string at_bound = std::string(json_max_depth, '[') + std::string(json_max_depth, ']');
  CHECK(parse_untrusted_json(at_bound, "f.json").is_array());
  std::string deeper = std::string(json_max_depth + 1, '[') + std::string(json_max_depth + 1, ']');
  SHARDALG_CHECK_THROWS_CONTAINING(parse_untrusted_json<ParseError>(deeper, "f.json"), ParseError,
                                   "f.json: JSON nests deeper than 64 levels (at byte 64)");
  // 100,000 levels (the depth that crashed a recursive print): refused the same way.
  SHARDALG_CHECK_THROWS_CONTAINING(parse_untrusted_json(std::string(100000, '{'), "deep"), FormatError, "nests deeper than 64");
  // Brackets and escaped quotes inside strings are text, not nesting.
  std::string quoted = "{\"a\": \"" + std::string(200, '[') + "\\\"" + std::string(200, '{') + "\"}";
  CHECK(parse_untrusted_json(quoted, "q.json")["a"].get<std::string>().size() == 401);
}

TEST_CASE("untrusted JSON: errors say what is wrong without the library's tag, values are excerpts") {
  try {
    parse_untrusted_json(std::string_view("{\"tensors\": ["), "m.json");
    FAIL("expected a FormatError");
  } catch (const FormatError& e) {
    std::string message = e.what();
    CHECK(message.starts_with("m.json is not valid JSON: parse error"));
    CHECK(message.find("[json.exception") == std::string::npos);
  }
  CHECK(json_excerpt(nlohmann::json::parse("[1, [2, \"a\\nb\"]]")) == "[1,[2,\"a\\nb\"]]");
  std::string excerpt = json_excerpt(nlohmann::json(std::string(5000, 'x')));
  CHECK(excerpt.ends_with("... (5002 characters)"));
  CHECK(excerpt.size() < 150);
}
