#include "../test_support.hpp"

#include <random>

#include "shardalg/storage/crc32.hpp"

using namespace shardalg;

TEST_CASE("crc32: the standard check value, and continuing equals checksumming at once") {
  std::string_view text = "123456789";
  CHECK(crc32(std::as_bytes(std::span(text.data(), text.size()))) == 0xcbf43926u);
  std::string long_text(1000, 'x');
  for (std::size_t i = 0; i < long_text.size(); ++i) long_text[i] = static_cast<char>(i * 31 + 7);
  auto all = std::as_bytes(std::span(long_text.data(), long_text.size()));
  for (std::size_t split : {0u, 1u, 7u, 8u, 64u, 333u, 1000u}) CHECK(crc32(all.subspan(split), crc32(all.first(split))) == crc32(all));
}

TEST_CASE("crc32: the folding path equals the tables at every length, alignment and starting register") {
  std::mt19937_64 random(7);
  std::vector<std::byte> data(5000);
  for (std::byte& b : data) b = static_cast<std::byte>(random());
  for (std::size_t length = 0; length <= 1200; ++length)
    for (std::size_t offset : {0u, 1u, 13u}) {
      auto bytes = std::span<const std::byte>(data).subspan(offset, length);
      std::uint32_t start = static_cast<std::uint32_t>(random());
      CHECK(crc32(bytes, start) == ~detail::crc32_tables(bytes, ~start));  // whichever path crc32 takes
#ifdef SHARDALG_CRC32_FOLDING
      if (detail::crc32_can_fold() && length >= 64 && length % 16 == 0)
        CHECK(detail::crc32_folding(bytes.data(), length, start) == detail::crc32_tables(bytes, start));
#endif
    }
}
