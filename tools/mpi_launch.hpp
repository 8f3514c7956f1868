// The CLI under an MPI launcher (`mpirun -np K shardalg ...`): how a process knows it was
// launched so, and MPI's lifetime around a command.
#pragma once

#include <mpi.h>

#include <cstdlib>
#include <exception>
#include <optional>
#include <string_view>

namespace shardalg::cli {

// This process's rank as the launcher (Open MPI, PMIx, MPICH) announced it; none when started
// without a launcher.
inline std::optional<std::string_view> rank_from_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* rank = std::getenv(variable)) return rank;
  return std::nullopt;
}

// MPI initialized for the lifetime of a command. Finalized when the command ends; when it ends
// by an error, left to main's error report, which finalizes after the reporting process has
// written the error (a process that exited first would let the launcher kill the reporter).
struct MpiSession {
  MpiSession() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) MPI_Init(nullptr, nullptr);
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    if (std::uncaught_exceptions() > 0) return;
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
};

}  // namespace shardalg::cli
