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

#include <string>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/error.hpp"

namespace shardalg {

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
