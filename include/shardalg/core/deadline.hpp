// Deadlines of bounded waits: every executor wait for a peer ends by one, computed here from a
// timeout in seconds that is checked first (a zero, negative, NaN or unrepresentably long
// timeout would otherwise fail at once, never, or overflow the clock).
#pragma once

#include <chrono>

#include "shardalg/core/error.hpp"

namespace shardalg {

// The longest timeout accepted: about 31 years, "wait forever" in practice, and far inside the
// steady clock's range (int64 nanoseconds).
inline constexpr double max_timeout_seconds = 1e9;

// `seconds` if it is a usable timeout: positive and at most max_timeout_seconds.
// Error naming the value otherwise. Example: checked_timeout(2.5) == 2.5; checked_timeout(0) throws.
inline double checked_timeout(double seconds) {
  if (!(seconds > 0) || !(seconds <= max_timeout_seconds))
    detail::fail("timeout ", seconds, " s must be positive and at most ", max_timeout_seconds, " s");
  return seconds;
}

// The steady-clock time `seconds` (checked) from now.
inline std::chrono::steady_clock::time_point deadline_after(double seconds) {
  std::chrono::duration<double> timeout(checked_timeout(seconds));
  return std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
}

}  // namespace shardalg
