#include "../test_support.hpp"

using namespace shardalg;

namespace {

void put16(std::string& s, std::uint32_t v) { s += static_cast<char>(v & 0xff), s += static_cast<char>(v >> 8 & 0xff); }
void put32(std::string& s, std::uint32_t v) { put16(s, v & 0xffff), put16(s, v >> 16); }

// A zip of stored entries, as torch.save writes them (its own offsets from the archive's start).
std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& entries, std::uint16_t method = 0) {
  std::string out, directory;
  for (const auto& [name, data] : entries) {
    std::uint32_t crc = crc32(std::as_bytes(std::span(data.data(), data.size())));
    std::uint32_t local = static_cast<std::uint32_t>(out.size());
    put32(out, 0x04034b50), put16(out, 20), put16(out, 0), put16(out, method), put32(out, 0), put32(out, crc);
    put32(out, static_cast<std::uint32_t>(data.size())), put32(out, static_cast<std::uint32_t>(data.size()));
    put16(out, static_cast<std::uint32_t>(name.size())), put16(out, 0);
    out += name + data;
    put32(directory, 0x02014b50), put16(directory, 20), put16(directory, 20), put16(directory, 0), put16(directory, method), put32(directory, 0);
    put32(directory, crc), put32(directory, static_cast<std::uint32_t>(data.size())), put32(directory, static_cast<std::uint32_t>(data.size()));
    put16(directory, static_cast<std::uint32_t>(name.size())), put16(directory, 0), put16(directory, 0), put16(directory, 0), put16(directory, 0);
    put32(directory, 0), put32(directory, local);
    directory += name;
  }
  std::uint32_t at = static_cast<std::uint32_t>(out.size());
  out += directory;
  put32(out, 0x06054b50), put16(out, 0), put16(out, 0), put16(out, static_cast<std::uint32_t>(entries.size()));
  put16(out, static_cast<std::uint32_t>(entries.size())), put32(out, static_cast<std::uint32_t>(directory.size())), put32(out, at), put16(out, 0);
  return out;
}

MemorySource source_of(const std::string& bytes) { return MemorySource(std::as_bytes(std::span(bytes.data(), bytes.size())), "test.zip"); }

}  // namespace

TEST_CASE("a stored zip inside a larger file: entries found at their bytes") {
  std::string zip = stored_zip({{"archive/data.pkl", "pickle!"}, {"archive/data/0", std::string(12, '\x01')}});
  std::string file = "HEADER" + zip + "TRAILER";
  MemorySource source = source_of(file);
  std::vector<ZipEntry> entries = read_zip_directory(source, 6, zip.size());
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == "archive/data.pkl");
  CHECK(file.substr(entries[0].data_offset, entries[0].size) == "pickle!");
  CHECK(file.substr(entries[1].data_offset, entries[1].size) == std::string(12, '\x01'));
}

TEST_CASE("zip errors: truncated, compressed, too many entries, past the end") {
  std::string zip = stored_zip({{"a", "xyz"}});
  MemorySource whole = source_of(zip);
  CHECK_THROWS_WITH_AS(read_zip_directory(whole, 0, zip.size() - 3), doctest::Contains("no zip end record"), FormatError);
  CHECK_THROWS_WITH_AS(read_zip_directory(whole, 0, zip.size() + 1), doctest::Contains("past the end"), FormatError);
  std::string deflated = stored_zip({{"a", "xyz"}}, 8);
  MemorySource compressed = source_of(deflated);
  CHECK_THROWS_WITH_AS(read_zip_directory(compressed, 0, deflated.size()), doctest::Contains("is compressed (method 8)"), FormatError);
  CHECK_THROWS_WITH_AS(read_zip_directory(whole, 0, zip.size(), 0), doctest::Contains("claims 1 entries"), FormatError);
}
