// Byte sizes as people write them: "256MB", "5GB", "1.5GiB", "4096". Decimal units (kB/KB, MB,
// GB, TB: powers of 1000, as Hugging Face's --max-shard-size) and binary ones (KiB, MiB, GiB, TiB:
// powers of 1024); a bare number is bytes.
//
// Example: parse_byte_size("5GB", "--max-shard-size") == 5'000'000'000;
//          parse_byte_size("256MiB", "--memory-limit") == 268'435'456;
//          parse_byte_size("12 parsecs", ...) fails naming the text and the units known.
#pragma once

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "shardalg/core/error.hpp"

namespace shardalg {

inline std::uint64_t parse_byte_size(std::string_view text, std::string_view what) {
  std::size_t at = 0;
  while (at < text.size() && (std::isdigit(static_cast<unsigned char>(text[at])) || text[at] == '.')) ++at;
  double number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + at, number);
  if (at == 0 || error != std::errc() || end != text.data() + at)
    detail::fail<ParseError>(what, " '", text, "': expected a number of bytes, e.g. 4096, 256MB or 1GiB");
  std::string_view unit = text.substr(at);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  struct Unit {
    std::string_view name;
    double bytes;
  };
  static constexpr Unit units[] = {{"", 1},          {"B", 1},          {"kB", 1e3},          {"KB", 1e3},          {"MB", 1e6},
                                   {"GB", 1e9},      {"TB", 1e12},      {"KiB", 1024.0},      {"MiB", 1048576.0},   {"GiB", 1073741824.0},
                                   {"TiB", 1099511627776.0}};
  for (const Unit& u : units)
    if (unit == u.name) {
      double bytes = std::round(number * u.bytes);
      if (!(bytes < 18446744073709551616.0)) detail::fail<OverflowError>(what, " '", text, "' does not fit in 64 bits");
      return static_cast<std::uint64_t>(bytes);
    }
  detail::fail<ParseError>(what, " '", text, "': unknown unit '", unit, "' (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)");
}

}  // namespace shardalg
