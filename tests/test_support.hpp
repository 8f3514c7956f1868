// Helpers shared by the tests.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "shardalg/shardalg.hpp"

namespace shardalg::testing {

// Expands a layout by brute force: for every global element, the ranks whose tile holds it.
// Independent of the library's own search (used to check it).
inline std::vector<std::vector<index_t>> holders_by_element(const MeshLayout& layout) {
  index_t count = volume(layout.global_shape());
  std::vector<std::vector<index_t>> holders(static_cast<std::size_t>(count));
  for (index_t rank : layout.mesh().devices()) {
    Tile tile = layout.tile(rank);
    for (index_t e = 0; e < count; ++e)
      if (tile.contains(row_major_coordinate(layout.global_shape(), e))) holders[static_cast<std::size_t>(e)].push_back(rank);
  }
  return holders;
}

// The global indices a tile dim holds, listed.
inline std::vector<index_t> positions(const IndexMap& map) {
  std::vector<index_t> result;
  for (const Run& run : map.runs())
    for (index_t i = 0; i < run.length; ++i) result.push_back(run.global_begin + i);
  return result;
}

// The model's global tensors (layout order), every element a distinct number from 1 up.
inline std::vector<std::vector<long>> numbered_tensors(const ModelLayout& layout) {
  std::vector<std::vector<long>> globals;
  long next = 1;
  for (const auto& t : layout.tensors()) {
    std::vector<long> values(static_cast<std::size_t>(volume(t.layout.global_shape())));
    for (long& x : values) x = next++;
    globals.push_back(std::move(values));
  }
  return globals;
}

}  // namespace shardalg::testing

// CHECK_THROWS_WITH_AS with a substring match on the message.
#define SHARDALG_CHECK_THROWS_CONTAINING(expr, ExceptionType, fragment)                        \
  do {                                                                                         \
    bool shardalg_thrown_ = false;                                                             \
    try {                                                                                      \
      (void)(expr);                                                                            \
    } catch (const ExceptionType& shardalg_error_) {                                           \
      shardalg_thrown_ = true;                                                                 \
      INFO("message: " << std::string(shardalg_error_.what()));                                             \
      CHECK(std::string(shardalg_error_.what()).find(fragment) != std::string::npos);          \
    }                                                                                          \
    CHECK_MESSAGE(shardalg_thrown_, "expected " #ExceptionType " from " #expr);                \
  } while (false)
