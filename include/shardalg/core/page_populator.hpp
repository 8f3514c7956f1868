// Maps the pages of arrays that are about to be filled on another thread than the one filling
// them (PagePopulator: a thread of its own; PagesAhead: steps taken by another thread), so that the
// kernel's work on fresh memory runs on another core.
//
// The first write to a fresh page costs a fault and a zeroed page; on a virtual machine, whose
// host must back the page too, that is slow enough (0.3-2 GB/s on the development VM) to take
// most of the time of a parser that builds hundreds of megabytes of nodes. It cannot be skipped,
// but it can run beside the parser: the thread populates the given ranges (MADV_POPULATE_WRITE,
// or MADV_POPULATE_READ for a mapped input) from their starts, in rounds that each map the next equal share of every range (the largest's
// share `step_bytes`), so that all the ranges stay ahead of a writer that fills them in
// proportion. A page the writer reaches first simply faults in as usual: the populator changes
// no data, only when pages become resident.
//
// stop() (also the destructor) ends the thread between two steps and waits for it: call it before
// any range is released or moved. Where MADV_POPULATE_WRITE is missing (before Linux 5.14 or off
// Linux) start() does nothing.
//
// Example: nodes.reserve(n); PagePopulator p; p.start({{nodes.data(), expected * sizeof(Node)}});
//          ... fill nodes ...; p.stop();
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace shardalg {

// The system's page size (4 KiB on x86, up to 64 KiB on ARM).
inline std::uintptr_t page_bytes() noexcept {
#if defined(__linux__)
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  return page;
#else
  return 4096;
#endif
}

namespace detail {
// madvise(`advice`) over the whole pages inside [data, data + bytes).
inline bool advise_whole_pages(const void* data, std::size_t bytes, int advice) noexcept {
  std::uintptr_t page = page_bytes();
  std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
  std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(page - 1);
  return end <= begin || ::madvise(reinterpret_cast<void*>(begin), end - begin, advice) == 0;
}
}  // namespace detail

// Maps the whole pages inside [data, data + bytes) for writing now, in one call (Linux 5.14's
// MADV_POPULATE_WRITE), rather than one fault per page as they are first written. A hint:
// returns false where unsupported or refused, and the pages then fault in as usual.
inline bool populate_for_writing(void* data, std::size_t bytes) noexcept {
#if defined(MADV_POPULATE_WRITE)
  return detail::advise_whole_pages(data, bytes, MADV_POPULATE_WRITE);
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

// The same for reading (MADV_POPULATE_READ): a mapped file's pages, say, before they are parsed.
inline bool populate_for_reading(const void* data, std::size_t bytes) noexcept {
#if defined(MADV_POPULATE_READ)
  return detail::advise_whole_pages(data, bytes, MADV_POPULATE_READ);
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

class PagePopulator {
 public:
  struct Range {
    const void* data;
    std::size_t bytes;
    bool read_only = false;  // mapped for reading (a file being parsed), not writing
  };

  static constexpr std::size_t whole_ranges = ~std::size_t{0};
  static constexpr std::size_t default_step_bytes = std::size_t{4} << 20;

  PagePopulator() = default;
  PagePopulator(const PagePopulator&) = delete;
  PagePopulator& operator=(const PagePopulator&) = delete;
  ~PagePopulator() { stop(); }

  // Starts populating `ranges` (a running populator is stopped first); with `whole_ranges` as the
  // step, each range in turn, whole. Pre: each range stays mapped until stop(). Without a thread
  // to spare (std::thread failing) the pages fault in as usual.
  void start(std::vector<Range> ranges, std::size_t step_bytes = default_step_bytes) {
    stop();
#if defined(MADV_POPULATE_WRITE)
    stopping_.store(false, std::memory_order_relaxed);
    // Steps in proportion to the ranges' sizes: the largest range's step is `step_bytes`.
    std::size_t largest = 0;
    for (const Range& r : ranges) largest = std::max(largest, r.bytes);
    std::size_t rounds = largest == 0 || step_bytes == 0 ? 1 : (largest - 1) / step_bytes + 1;
    const std::uintptr_t page = page_bytes();
    try {
      thread_ = std::thread([this, ranges = std::move(ranges), rounds, page] {
        for (std::size_t round = 0; round < rounds; ++round)
          for (const Range& r : ranges) {
            if (stopping_.load(std::memory_order_relaxed)) return;
            // Shares end on page boundaries: a page cut between two shares would be whole in neither.
            auto boundary = [&](std::size_t k) {
              auto at = reinterpret_cast<std::uintptr_t>(r.data);
              if (k == rounds) return at + r.bytes;
              return std::max(at, (at + r.bytes / rounds * k) & ~(page - 1));
            };
            std::uintptr_t begin = boundary(round), end = boundary(round + 1);
            if (r.read_only)
              populate_for_reading(reinterpret_cast<const void*>(begin), end - begin);
            else
              populate_for_writing(reinterpret_cast<void*>(begin), end - begin);
          }
      });
    } catch (const std::system_error&) {
      // No thread: the writer faults its pages in itself.
    }
#else
    (void)ranges;
    (void)step_bytes;
#endif
  }

  // Whether a thread was started and not yet stopped (it may have finished its ranges).
  bool running() const noexcept { return thread_.joinable(); }

  // Ends the populating (within one step) and waits for it. Idempotent.
  void stop() noexcept {
    if (!thread_.joinable()) return;
    stopping_.store(true, std::memory_order_relaxed);
    thread_.join();
  }

 private:
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Keeps the pages of arrays that a writer fills a little ahead of their ends mapped, in steps
// taken by another thread between its own work (PagePopulator's work without a thread of its own,
// for a writer whose arrays' final sizes are unknown). The writer now and then publishes where
// each array lies and how far it is filled; the other thread calls step() when it can, and each
// call maps at most `step_bytes` of one array, up to `ahead_bytes` past its published end (never
// past its published capacity). A view that is out of date (an array moved or filled further
// since) only maps pages early or in vain: populating changes no data.
//
// Example: PagesAhead ahead(1);
//          writer:       ahead.publish(0, values.data(), values.size() * 8, values.capacity() * 8);
//          other thread: while (ahead.step()) {}  then its own work
class PagesAhead {
 public:
  static constexpr std::size_t default_ahead_bytes = std::size_t{2} << 20, default_step_bytes = std::size_t{512} << 10;

  explicit PagesAhead(std::size_t arrays, std::size_t ahead_bytes = default_ahead_bytes, std::size_t step_bytes = default_step_bytes)
      : ranges_(std::make_unique<Range[]>(arrays)), count_(arrays), ahead_(ahead_bytes), step_(std::max(step_bytes, 2 * page_bytes())) {}

  // The writer: array `array` (< the count given) starts at `data`, is filled to `used_bytes` and
  // may grow to `capacity_bytes` there; `read_only` for a mapped input being read.
  void publish(std::size_t array, const void* data, std::size_t used_bytes, std::size_t capacity_bytes, bool read_only = false) noexcept {
    Range& r = ranges_[array];
    r.data.store(data, std::memory_order_relaxed);
    r.used.store(used_bytes, std::memory_order_relaxed);
    r.capacity.store(capacity_bytes, std::memory_order_relaxed);
    r.read_only.store(read_only, std::memory_order_relaxed);
  }

  // The other thread (one at a time): maps one step of the first array not yet `ahead_bytes`
  // ahead of its end. Returns false when every array is (nothing was done).
  bool step() noexcept {
#if defined(MADV_POPULATE_WRITE)
    for (std::size_t i = 0; i < count_; ++i) {
      Range& r = ranges_[i];
      const auto* data = static_cast<const char*>(r.data.load(std::memory_order_relaxed));
      if (data == nullptr) continue;
      if (data != r.seen) {  // published first, or moved
        r.seen = data;
        r.mapped = 0;
      }
      std::size_t used = r.used.load(std::memory_order_relaxed);
      std::size_t target = std::min(r.capacity.load(std::memory_order_relaxed), used + ahead_);
      r.mapped = std::max(r.mapped, used);  // the writer has mapped what it filled
      if (target < r.mapped + page_bytes()) continue;
      std::size_t end = std::min(target, r.mapped + step_);
      if (end < target) {  // steps end on page boundaries: a page cut between two would be whole in neither
        auto base = reinterpret_cast<std::uintptr_t>(data);
        end = ((base + end) & ~(page_bytes() - 1)) - base;
      }
      if (r.read_only.load(std::memory_order_relaxed))
        populate_for_reading(data + r.mapped, end - r.mapped);
      else
        populate_for_writing(const_cast<char*>(data) + r.mapped, end - r.mapped);
      r.mapped = end;
      return true;
    }
#endif
    return false;
  }

 private:
  struct Range {
    std::atomic<const void*> data{nullptr};
    std::atomic<std::size_t> used{0}, capacity{0};
    std::atomic<bool> read_only{false};
    const char* seen = nullptr;  // the stepping thread's: where it last saw the array
    std::size_t mapped = 0;      // and how far from there it has mapped it
  };
  std::unique_ptr<Range[]> ranges_;
  std::size_t count_, ahead_, step_;
};

}  // namespace shardalg
