// A vector that keeps up to N elements inline and spills to the heap beyond that.
// Tensor ranks and mesh ranks are small (<= 8 in practice), and most index maps have one or two
// runs, so the common case allocates nothing. Usable in constant expressions.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <utility>
#include <vector>

namespace shardalg {

template <class T, std::size_t N>
class SmallVector {
 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  constexpr SmallVector() = default;
  // Copies and moves touch only the live elements.
  constexpr SmallVector(const SmallVector& other) { append_all(other); }
  constexpr SmallVector(SmallVector&& other) noexcept : heap_(std::move(other.heap_)) {
    if (heap_.empty()) {
      for (std::size_t i = 0; i < other.inline_size_; ++i) inline_[i] = std::move(other.inline_[i]);
      inline_size_ = other.inline_size_;
    }
    other.clear();
  }
  constexpr SmallVector& operator=(const SmallVector& other) {
    if (this != &other) {
      clear();
      append_all(other);
    }
    return *this;
  }
  constexpr SmallVector& operator=(SmallVector&& other) noexcept {
    if (this != &other) {
      clear();
      heap_ = std::move(other.heap_);
      if (heap_.empty()) {
        for (std::size_t i = 0; i < other.inline_size_; ++i) inline_[i] = std::move(other.inline_[i]);
        inline_size_ = other.inline_size_;
      }
      other.clear();
    }
    return *this;
  }
  constexpr SmallVector(std::initializer_list<T> values) {
    for (const T& v : values) push_back(v);
  }
  template <class Range>
    requires requires(const Range& r) { r.begin(); r.end(); }
  constexpr explicit SmallVector(const Range& values) {
    for (const auto& v : values) push_back(static_cast<T>(v));
  }
  // n copies of value.
  constexpr SmallVector(std::size_t n, const T& value) {
    for (std::size_t i = 0; i < n; ++i) push_back(value);
  }

  constexpr std::size_t size() const { return heap_.empty() ? inline_size_ : heap_.size(); }
  constexpr bool empty() const { return size() == 0; }
  constexpr T* data() { return heap_.empty() ? inline_.data() : heap_.data(); }
  constexpr const T* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  constexpr T* begin() { return data(); }
  constexpr T* end() { return data() + size(); }
  constexpr const T* begin() const { return data(); }
  constexpr const T* end() const { return data() + size(); }
  constexpr T& operator[](std::size_t i) { return data()[i]; }
  constexpr const T& operator[](std::size_t i) const { return data()[i]; }
  constexpr T& back() { return data()[size() - 1]; }
  constexpr const T& back() const { return data()[size() - 1]; }

  constexpr void push_back(const T& value) { add(value); }
  constexpr void push_back(T&& value) { add(std::move(value)); }
  // Precondition: !empty().
  constexpr void pop_back() {
    if (heap_.empty()) --inline_size_;
    else heap_.pop_back();
  }
  constexpr void clear() {
    heap_.clear();
    inline_size_ = 0;
  }

  friend constexpr bool operator==(const SmallVector& a, const SmallVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  template <class V>
  constexpr void add(V&& value) {
    if (!heap_.empty()) {
      heap_.push_back(std::forward<V>(value));
    } else if (inline_size_ < N) {
      inline_[inline_size_++] = std::forward<V>(value);
    } else {
      T last(std::forward<V>(value));  // before the inline elements move: value may be one of them
      heap_.reserve(2 * N + 1);
      heap_.assign(std::make_move_iterator(inline_.begin()), std::make_move_iterator(inline_.end()));
      heap_.push_back(std::move(last));
      inline_size_ = 0;
    }
  }

  constexpr void append_all(const SmallVector& other) {
    if (other.size() > N) heap_.reserve(other.size());
    for (const T& v : other) push_back(v);
  }

  std::array<T, N> inline_{};
  std::size_t inline_size_ = 0;
  std::vector<T> heap_{};
};

}  // namespace shardalg
