// Writing a planned checkpoint from the command line: progress on stderr, a one-line summary, and
// (when asked) the output verified and compared with its source element by element; under mpirun
// the files, the verification and the comparison divided among the processes.
#pragma once

#include <algorithm>
#include <functional>
#include <iostream>
#include <optional>

#include "mpi_launch.hpp"
#include "progress.hpp"
#include "shardalg/exec/mpi/mpi_communicator.hpp"
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

// The processes writing one checkpoint: all those of an MPI launch (`mpirun -np K`), dividing the
// files among them; a process started without a launcher writes alone, without MPI.
class WriteTeam {
 public:
  // `join_launch` false: this process alone even under a launcher.
  explicit WriteTeam(bool join_launch = true) {
    if (!join_launch || !rank_from_launcher()) return;
    session_.emplace();
    comm_.emplace();
  }
  ProcessShare share() const { return comm_ ? ProcessShare{comm_->rank(), comm_->size()} : ProcessShare{}; }
  FailureAgreement agreement() {
    if (!comm_) return {};
    return [this](const std::string& failure) { return comm_->agree_on_failure(failure); };
  }
  // `work` on every process, then agreement: a failure anywhere fails all (see agreed_step).
  template <class Work>
  void step(Work&& work) {
    agreed_step(agreement(), true, work, [] {});
  }
  std::uint64_t sum(std::uint64_t value) { return comm_ ? static_cast<std::uint64_t>(comm_->all_sum(static_cast<index_t>(value))) : value; }

 private:
  std::optional<MpiSession> session_;  // declared first: finalized after the communicator is freed
  std::optional<MpiCommunicator> comm_;
};

// Writes `output` (planned from `source`) as `destination`, its files divided among the team.
// Returns the exit code: 0, or 1 when the check finds the output unequal to the source (each
// difference printed, by the process that found it). The leader prints progress (its own share)
// and the summary.
inline int write_and_check(WriteTeam& team, const Checkpoint& source, const CheckpointOutput& output, const std::string& destination,
                           const WriteSettings& s, std::string_view verb) {
  const ProcessShare share = team.share();
  WriteOptions options;
  options.threads = s.threads;
  options.memory_limit = s.memory_limit;
  options.share = share;
  options.agree = team.agreement();
  std::string what(verb);
  if (share.processes > 1) what += detail::concat(" (process 0's share of ", share.processes, ")");
  std::cout << std::flush;  // what was said before the work shows before its progress (on stderr)
  ProgressReport progress(what, s.quiet || !share.leader());
  options.progress = std::ref(progress);
  write_checkpoint(source, output, destination, options);
  double seconds = progress.seconds();
  const CheckpointLayout& layout = output.layout;
  if (share.leader())
    std::cout << verb << " " << destination << ": " << to_string(layout.format) << ", " << layout.files.size() << (layout.files.size() == 1 ? " file, " : " files, ")
              << layout.tensors.size() << " tensors (" << layout.chunk_count() << " chunks), " << layout.entries.size() << " entries, " << output.total_bytes()
              << " bytes in " << fixed_seconds(seconds) << " s (" << human_bytes(static_cast<double>(output.total_bytes()) / std::max(seconds, 1e-9)) << "/s"
              << (share.processes > 1 ? detail::concat(", ", share.processes, " processes") : "") << ")\n"
              << std::flush;
  if (!s.check) return 0;
  std::optional<CheckpointVerification> report;
  std::optional<CheckpointComparison> comparison;
  team.step([&] {
    Checkpoint written = Checkpoint::open(destination);
    report = verify_checkpoint(written, true, share);
    comparison = compare_checkpoints(source, written, s.threads, s.memory_limit, s.entries, 20, share);
  });
  std::string found;  // one write, so that the processes' lines do not interleave
  for (const std::string& p : report->problems) found += "problem: " + p + "\n";
  for (const std::string& d : comparison->differences) found += "differs: " + d + "\n";
  std::cout << found << std::flush;
  std::uint64_t failures = team.sum(found.empty() ? 0 : 1), bytes = team.sum(comparison->bytes);
  if (share.leader() && failures > 0) std::cout << "check failed: the output does not equal the source\n";
  if (share.leader() && failures == 0) {
    std::cout << "checked: " << comparison->tensors << " tensors (" << bytes << " bytes) and " << comparison->entries << " entries equal the source, element by element";
    if (!s.entries) std::cout << " (" << source.layout().entries.size() << " non-tensor entries left out)";
    std::cout << "\n";
  }
  std::cout << std::flush;
  team.sum(0);  // the others exit after the leader's verdict is out (the launcher stops at a failed exit)
  return failures == 0 ? 0 : 1;
}

}  // namespace shardalg::cli
