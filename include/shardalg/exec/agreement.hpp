// Checking locally, agreeing on failure: before any data moves, every rank runs its own checks
// and all ranks combine the outcomes in one all-max, so that a failure anywhere stops every rank
// and no rank waits in a transfer that the failed one never starts. The engine, the MPI and NCCL
// collective programs, the shared-memory communicator and the CLI's `run` all agree this way.
//
// Example, on every rank of a communicator `comm` with an all-max:
//   check_on_every_rank(comm.rank(), "execute", [&] { check_buffers(); },
//                       [&](index_t vote) { return comm.all_max(vote); });
// Rank 2's buffer too small: rank 2 throws its own message, the others
// "execute: rank 2 failed its checks; nothing was sent".
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg {

// How the processes of a team agree on failure, message included: given this process's failure
// ("" when it succeeded), returns on every process one failed process's message prefixed with its
// number ("process 2: ..."), or "" when none failed. An empty function stands for a team of one.
using FailureAgreement = std::function<std::string(const std::string&)>;

// One step of work shared by a team: `work` runs where `here` holds, then the processes agree on
// the outcome (`agree`; empty: a team of one). When any failed, `cleanup` runs on every process,
// after all have stopped working; then the failed process rethrows its own error (any
// std::exception) and the others throw the agreed message.
template <class Work, class Cleanup>
void agreed_step(const FailureAgreement& agree, bool here, Work&& work, Cleanup&& cleanup) {
  std::exception_ptr error;
  std::string failure;
  if (here) try {
      work();
    } catch (const std::exception& e) {
      error = std::current_exception();
      failure = e.what();
    }
  std::string agreed = agree ? agree(failure) : failure;
  if (agreed.empty()) return;
  cleanup();
  if (error) std::rethrow_exception(error);
  throw Error(agreed);
}

// Runs `checks` (which throw Error on failure) and returns the message, empty when they passed.
template <class Checks>
std::string failure_of(Checks&& checks) {
  try {
    checks();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// What a rank contributes to the all-max: its rank when it failed, -1 when it passed.
inline index_t failure_vote(const std::string& failure, index_t rank) { return failure.empty() ? -1 : rank; }

// After the all-max (`failed_rank`: the largest vote): the failed rank throws its own message;
// when another rank failed, this one throws "<who>: rank R <failed>; nothing was sent".
inline void throw_if_any_failed(const std::string& failure, index_t failed_rank, std::string_view who,
                                std::string_view failed = "failed its checks") {
  if (!failure.empty()) throw Error(failure);
  if (failed_rank >= 0) detail::fail(who, ": rank ", failed_rank, " ", failed, "; nothing was sent");
}

// The three in one: `all_max(index_t) -> index_t` is an all-reduce max over every rank.
template <class Checks, class AllMax>
void check_on_every_rank(index_t rank, std::string_view who, Checks&& checks, AllMax&& all_max, std::string_view failed = "failed its checks") {
  std::string failure = failure_of(checks);
  throw_if_any_failed(failure, all_max(failure_vote(failure, rank)), who, failed);
}

}  // namespace shardalg
