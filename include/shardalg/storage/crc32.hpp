// CRC-32 (IEEE 802.3, zip's and torch.save's): every byte a checkpoint writer copies is checksummed,
// so this runs at memory speed. On x86-64 with carry-less multiplication (PCLMULQDQ, every x86
// CPU since 2010) 64 bytes are folded per step into four 128-bit lanes, then reduced to 32 bits
// (Barrett reduction); elsewhere, and for the last bytes, eight bytes per step through eight tables.
//
// Example: crc32 of the nine ASCII bytes "123456789" is 0xCBF43926 (the standard check value),
// and crc32(b, crc32(a)) == crc32(a followed by b).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SHARDALG_CRC32_FOLDING 1
#endif

namespace shardalg {
namespace detail {

// The CRC register (not inverted) after `bytes`, eight bytes per step. Table k holds the CRC of a
// byte followed by k zero bytes.
inline std::uint32_t crc32_tables(std::span<const std::byte> bytes, std::uint32_t reg) {
  using Tables = std::array<std::array<std::uint32_t, 256>, 8>;
  static const Tables tables = [] {
    Tables t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (std::size_t k = 1; k < 8; ++k)
      for (std::uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
    return t;
  }();
  auto byte = [&](std::size_t i) { return std::to_integer<std::uint32_t>(bytes[i]); };
  std::size_t i = 0, n = bytes.size();
  for (; i + 8 <= n; i += 8) {
    std::uint32_t low = reg ^ (byte(i) | byte(i + 1) << 8 | byte(i + 2) << 16 | byte(i + 3) << 24);
    reg = tables[7][low & 0xff] ^ tables[6][(low >> 8) & 0xff] ^ tables[5][(low >> 16) & 0xff] ^ tables[4][low >> 24] ^ tables[3][byte(i + 4)] ^
          tables[2][byte(i + 5)] ^ tables[1][byte(i + 6)] ^ tables[0][byte(i + 7)];
  }
  for (; i < n; ++i) reg = tables[0][(reg ^ byte(i)) & 0xff] ^ (reg >> 8);
  return reg;
}

#ifdef SHARDALG_CRC32_FOLDING

// One fold: the lane's two halves multiplied by x^(distance) mod P (the constants' halves), added
// to the lane `distance` bits further on.
__attribute__((target("pclmul,sse4.1"))) inline __m128i crc32_fold(__m128i lane, __m128i constants, __m128i further) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(lane, constants, 0x00), _mm_clmulepi64_si128(lane, constants, 0x11)), further);
}

// The CRC register after the first `n` bytes of `p`, n >= 64 and a multiple of 16.
// Constants (bit-reflected, 33 bits): x^(4*128+-32) and x^(4*128+32) mod P for folding 512 bits,
// x^(128+-32), x^(128+32) for 128 bits, x^64 for the 64 -> 32 step; P and floor(x^64 / P).
__attribute__((target("pclmul,sse4.1"))) inline std::uint32_t crc32_folding(const std::byte* p, std::size_t n, std::uint32_t reg) {
  const __m128i by_512 = _mm_set_epi64x(0x1c6e41596, 0x154442bd4), by_128 = _mm_set_epi64x(0x0ccaa009e, 0x1751997d0);
  const __m128i by_64 = _mm_set_epi64x(0, 0x163cd6124), barrett = _mm_set_epi64x(0x1f7011641, 0x1db710641);
  const __m128i low32 = _mm_set_epi32(0, 0, 0, -1);
  auto at = [p](std::size_t offset) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + offset)); };
  __m128i a = _mm_xor_si128(at(0), _mm_cvtsi32_si128(static_cast<int>(reg))), b = at(16), c = at(32), d = at(48);
  std::size_t i = 64;
  for (; i + 64 <= n; i += 64) {
    a = crc32_fold(a, by_512, at(i));
    b = crc32_fold(b, by_512, at(i + 16));
    c = crc32_fold(c, by_512, at(i + 32));
    d = crc32_fold(d, by_512, at(i + 48));
  }
  a = crc32_fold(crc32_fold(crc32_fold(a, by_128, b), by_128, c), by_128, d);
  for (; i + 16 <= n; i += 16) a = crc32_fold(a, by_128, at(i));
  a = _mm_xor_si128(_mm_clmulepi64_si128(a, by_128, 0x10), _mm_srli_si128(a, 8));                // 128 -> 64 bits
  a = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(a, low32), by_64, 0x00), _mm_srli_si128(a, 4));  // 64 -> 32 (+32)
  __m128i q = _mm_clmulepi64_si128(_mm_and_si128(a, low32), barrett, 0x10);                      // quotient estimate
  q = _mm_clmulepi64_si128(_mm_and_si128(q, low32), barrett, 0x00);                              // times P
  return static_cast<std::uint32_t>(_mm_extract_epi32(_mm_xor_si128(a, q), 1));
}

inline bool crc32_can_fold() {
  static const bool supported = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return supported;
}

#endif

}  // namespace detail

// CRC-32 of `bytes`, continuing from `crc` (0 to start).
inline std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc = 0) {
  std::uint32_t reg = ~crc;
#ifdef SHARDALG_CRC32_FOLDING
  if (bytes.size() >= 64 && detail::crc32_can_fold()) {
    std::size_t folded = bytes.size() & ~std::size_t{15};
    reg = detail::crc32_folding(bytes.data(), folded, reg);
    bytes = bytes.subspan(folded);
  }
#endif
  return ~detail::crc32_tables(bytes, reg);
}

}  // namespace shardalg
