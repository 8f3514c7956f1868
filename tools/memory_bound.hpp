// --max-memory: what a command may allocate for its answer, checked before the work starts.
// Commands whose answer covers every rank (groups, partition, plan, cost) estimate the memory their
// answer needs from the sizes given and refuse, with one line naming the estimate, the bound and
// this option, when it would not fit: never minutes of work ending in an allocation failure.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "shardalg/core/byte_size.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg::cli {

class MemoryBound {
 public:
  // Adds --max-memory to `cmd`.
  void add_to(CLI::App& cmd) {
    cmd.add_option("--max-memory", text_, "Refuse work whose answer needs more memory than this, e.g. 4GiB (default: half of this machine's memory)");
  }

  // The bound in bytes: --max-memory, or half of the physical memory.
  std::uint64_t bytes() const {
    if (!text_.empty()) return parse_byte_size(text_, "--max-memory");
    long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page_size <= 0) return std::uint64_t{4} << 30;  // unknown: 4 GiB
    return static_cast<std::uint64_t>(pages) / 2 * static_cast<std::uint64_t>(page_size);
  }

  // Refuses `what` when its estimated need (in bytes, a double so that any size adds up) exceeds
  // the bound. `how` says what the estimate counts.
  // Example: require(6.4e9, "groups --json", "16777216 ranks x 6 families") with a 4 GiB bound fails:
  // "groups --json needs about 6.0 GiB (16777216 ranks x 6 families), over the memory bound of
  // 4.0 GiB (half of this machine's memory; --max-memory sets it)".
  void require(double estimated_bytes, std::string_view what, std::string_view how) const {
    std::uint64_t bound = bytes();
    if (estimated_bytes <= static_cast<double>(bound)) return;
    detail::fail(what, " needs about ", gib(estimated_bytes), " (", how, "), over the memory bound of ", gib(static_cast<double>(bound)),
                 text_.empty() ? " (half of this machine's memory; --max-memory sets it)" : " (--max-memory)");
  }

 private:
  static std::string gib(double bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f GiB", bytes / 1073741824.0);
    return text;
  }
  std::string text_;
};

}  // namespace shardalg::cli
