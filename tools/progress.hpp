// Progress of long work on stderr: a bar redrawn in place on a terminal (bytes done, rate, time
// left); plain lines at every 10% otherwise (logs, CI); nothing when quiet.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace shardalg::cli {

// "1.5 GB", "830 MB", "12 kB", "512 B" (decimal units).
inline std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (bytes >= 1000 && u < 5) {
    bytes /= 1000;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 || bytes >= 100 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return text;
}

class ProgressReport {
 public:
  ProgressReport(std::string what, bool quiet) : what_(std::move(what)), quiet_(quiet), terminal_(::isatty(STDERR_FILENO) == 1) {}

  void operator()(std::uint64_t done, std::uint64_t total) {
    if (quiet_ || finished_) return;
    finished_ = done >= total;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double fraction = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    std::string left = rate > 0 && done < total ? std::to_string(static_cast<long long>((static_cast<double>(total - done)) / rate + 0.5)) + "s left" : "";
    if (terminal_) {
      int filled = static_cast<int>(fraction * 30);
      std::fprintf(stderr, "\r%s [%s%s] %3d%%  %s / %s  %s/s  %s   ", what_.c_str(), std::string(static_cast<std::size_t>(filled), '#').c_str(),
                   std::string(static_cast<std::size_t>(30 - filled), ' ').c_str(), static_cast<int>(fraction * 100), human_bytes(static_cast<double>(done)).c_str(),
                   human_bytes(static_cast<double>(total)).c_str(), human_bytes(rate).c_str(), left.c_str());
      if (finished_) std::fprintf(stderr, "\n");
      std::fflush(stderr);
      return;
    }
    int step = static_cast<int>(fraction * 10);
    if (step <= printed_step_ && !finished_) return;
    printed_step_ = step;
    std::fprintf(stderr, "%s: %3d%%  %s / %s  %s/s  %s\n", what_.c_str(), static_cast<int>(fraction * 100), human_bytes(static_cast<double>(done)).c_str(),
                 human_bytes(static_cast<double>(total)).c_str(), human_bytes(rate).c_str(), left.c_str());
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::string what_;
  bool quiet_, terminal_, finished_ = false;
  int printed_step_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace shardalg::cli
