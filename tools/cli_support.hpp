// Shared pieces of the shardalg command-line program.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shardalg/shardalg.hpp"

namespace shardalg::cli {

// Reads "15,5" (or "15x5"); every extent a non-negative integer.
inline Dims parse_shape(std::string_view text) {
  detail::Scanner in(text, "shape");
  Dims shape;
  if (in.at_end()) in.fail_here("expected at least one extent");
  do {
    index_t extent = in.integer();
    if (extent < 0) detail::fail<ParseError>("shape '", text, "': extent ", extent, " is negative");
    shape.push_back(extent);
  } while (in.accept(",") || in.accept("x"));
  in.expect_end();
  volume(shape);  // element count must fit in int64
  return shape;
}

inline nlohmann::ordered_json to_json(const Dims& dims) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (index_t v : dims) array.push_back(v);
  return array;
}

}  // namespace shardalg::cli
