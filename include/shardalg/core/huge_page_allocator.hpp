// An allocator whose large blocks sit on 2 MiB pages where the kernel offers them.
//
// A parser that builds hundreds of megabytes of nodes spends most of its time in page faults when
// the memory comes in 4 KiB pages: one fault per 4 KiB on first touch, and each costs microseconds
// on a virtual machine. Linux backs an anonymous mapping with transparent huge pages when asked
// (madvise MADV_HUGEPAGE, which is what the common "madvise" setting waits for): one fault per
// 2 MiB. Reserving capacity stays free either way: untouched pages are never resident, so memory
// stays proportional to what is used.
//
// Blocks of at least `huge_page_bytes` are mapped (rounded up to whole huge pages, aligned to
// one); smaller ones come from operator new, as do all where the platform has no MADV_HUGEPAGE.
//
// Memory that other allocators hand out can still skip the per-page faults: populate_for_writing
// maps a range's pages in one call.
//
// Example: std::vector<Node, HugePageAllocator<Node>> nodes; nodes.reserve(input_bytes / 8);
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace shardalg {

inline constexpr std::size_t huge_page_bytes = std::size_t{2} << 20;

namespace detail {

inline constexpr std::size_t huge_pages_for(std::size_t bytes) { return (bytes + huge_page_bytes - 1) & ~(huge_page_bytes - 1); }

// `bytes` (at least huge_page_bytes) of zeroed memory starting on a huge-page boundary.
inline void* map_huge_pages(std::size_t bytes) {
#if defined(MADV_HUGEPAGE)
  // Map one huge page more than needed, then unmap the ends so that the block starts on a
  // huge-page boundary (a mapping at an arbitrary 4 KiB boundary could use no huge page at all).
  std::size_t length = huge_pages_for(bytes);
  void* mapped = ::mmap(nullptr, length + huge_page_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  auto begin = reinterpret_cast<std::uintptr_t>(mapped);
  std::uintptr_t aligned = (begin + huge_page_bytes - 1) & ~(std::uintptr_t{huge_page_bytes} - 1);
  if (aligned > begin) ::munmap(mapped, aligned - begin);
  if (std::uintptr_t end = aligned + length, mapped_end = begin + length + huge_page_bytes; mapped_end > end)
    ::munmap(reinterpret_cast<void*>(end), mapped_end - end);
  ::madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);  // a hint: the block works without it
  return reinterpret_cast<void*>(aligned);
#else
  return ::operator new(bytes, std::align_val_t{huge_page_bytes});
#endif
}

inline void unmap_huge_pages(void* block, std::size_t bytes) noexcept {
#if defined(MADV_HUGEPAGE)
  ::munmap(block, huge_pages_for(bytes));
#else
  ::operator delete(block, std::align_val_t{huge_page_bytes});
#endif
}

}  // namespace detail

// Maps the whole pages inside [data, data + bytes) for writing now, in one call (Linux 5.14's
// MADV_POPULATE_WRITE), rather than one fault per page as they are first written: for memory
// from an allocator this file does not control (std::vector's) that is about to be filled in
// full. A hint: returns false where unsupported or refused, and the pages then fault in as usual.
inline bool populate_for_writing(void* data, std::size_t bytes) noexcept {
#if defined(MADV_POPULATE_WRITE)
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));  // 4 KiB on x86, up to 64 KiB on ARM
  std::uintptr_t begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
  std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(page - 1);
  return end <= begin || ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE) == 0;
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

template <class T>
class HugePageAllocator {
 public:
  using value_type = T;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > max_size()) throw std::bad_array_new_length();
    std::size_t bytes = n * sizeof(T);
    if (bytes >= huge_page_bytes) return static_cast<T*>(detail::map_huge_pages(bytes));
    return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    std::size_t bytes = n * sizeof(T);
    if (bytes >= huge_page_bytes)
      detail::unmap_huge_pages(p, bytes);
    else
      ::operator delete(p, std::align_val_t{alignof(T)});
  }
  // Room for the rounding to whole huge pages.
  static constexpr std::size_t max_size() noexcept { return (~std::size_t{0} - 2 * huge_page_bytes) / sizeof(T); }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace shardalg
