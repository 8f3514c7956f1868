// Writing a planned checkpoint from the command line: progress on stderr, a one-line summary, and
// (when asked) the output verified and compared with its source element by element.
#pragma once

#include <algorithm>
#include <functional>
#include <iostream>

#include "progress.hpp"
#include "shardalg/storage/checkpoint_comparison.hpp"
#include "shardalg/storage/checkpoint_verification.hpp"
#include "shardalg/storage/checkpoint_writer.hpp"

namespace shardalg::cli {

struct WriteSettings {
  unsigned threads = 4;
  std::uint64_t memory_limit = std::uint64_t{256} << 20;
  bool check = false, quiet = false;
  bool entries = true;  // the output holds the source's non-tensor entries (checked with the tensors)
};

inline std::string fixed_seconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", seconds);
  return text;
}

// Writes `output` (planned from `source`) as `destination`. Returns the exit code: 0, or 1 when
// the check finds the output unequal to the source (each difference printed).
inline int write_and_check(const Checkpoint& source, const CheckpointOutput& output, const std::string& destination, const WriteSettings& s,
                           std::string_view verb) {
  WriteOptions options;
  options.threads = s.threads;
  options.memory_limit = s.memory_limit;
  ProgressReport progress(std::string(verb), s.quiet);
  options.progress = std::ref(progress);
  write_checkpoint(source, output, destination, options);
  double seconds = progress.seconds();
  const CheckpointLayout& layout = output.layout;
  std::cout << verb << " " << destination << ": " << to_string(layout.format) << ", " << layout.files.size() << (layout.files.size() == 1 ? " file, " : " files, ")
            << layout.tensors.size() << " tensors (" << layout.chunk_count() << " chunks), " << layout.entries.size() << " entries, " << output.total_bytes()
            << " bytes in " << fixed_seconds(seconds) << " s (" << human_bytes(static_cast<double>(output.total_bytes()) / std::max(seconds, 1e-9)) << "/s)\n";
  if (!s.check) return 0;
  Checkpoint written = Checkpoint::open(destination);
  CheckpointVerification report = verify_checkpoint(written);
  CheckpointComparison comparison = compare_checkpoints(source, written, s.threads, s.memory_limit, s.entries);
  for (const std::string& p : report.problems) std::cout << "problem: " << p << "\n";
  for (const std::string& d : comparison.differences) std::cout << "differs: " << d << "\n";
  if (!report.ok() || !comparison.equal()) {
    std::cout << "check failed: the output does not equal the source\n";
    return 1;
  }
  std::cout << "checked: " << comparison.tensors << " tensors (" << comparison.bytes << " bytes) and " << comparison.entries
            << " entries equal the source, element by element";
  if (!s.entries) std::cout << " (" << source.layout().entries.size() << " non-tensor entries left out)";
  std::cout << "\n";
  return 0;
}

}  // namespace shardalg::cli
