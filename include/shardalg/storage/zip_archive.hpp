// The directory of a zip archive whose entries are stored uncompressed, as torch.save writes them:
// each entry's name, size, CRC-32 and where its bytes are, so tensors are read in place.
//
// Why not libzip: a DCP `.distcp` file holds torch.save archives at byte offsets inside a larger
// file, and loading must pread an entry's raw bytes where they are; libzip opens whole archives
// and does not expose an entry's data offset. Reading the central directory of stored entries
// (zip64 included) is what is needed, checked field by field and fuzzed (fuzz/).
//
// Example: torch.save(torch.zeros(3, 3)) at byte 0 of a file gives entries
//   archive/data.pkl (154 bytes at 64), archive/data/0 (36 bytes at 320), archive/version (2 bytes).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "shardalg/storage/byte_source.hpp"
#include "shardalg/storage/crc32.hpp"

namespace shardalg {

struct ZipEntry {
  std::string name;
  std::uint64_t data_offset = 0;  // in the source (not the archive)
  std::uint64_t size = 0;
  std::uint32_t crc32 = 0;
};

namespace detail {

inline constexpr std::uint32_t zip_local_header = 0x04034b50, zip_central_header = 0x02014b50, zip_end = 0x06054b50,
                               zip64_end = 0x06064b50, zip64_locator = 0x07064b50;

inline std::uint64_t zip_field(const std::vector<std::byte>& b, std::size_t at, std::size_t width) {
  return width == 2 ? load_le<std::uint16_t>(b.data() + at) : width == 4 ? load_le<std::uint32_t>(b.data() + at) : load_le<std::uint64_t>(b.data() + at);
}

}  // namespace detail

// The entries of the zip archive occupying [offset, offset + length) of `source`. Each entry's
// local header is checked against the central directory.
// Errors (FormatError, naming the source): no end record, records past the archive's end,
// compressed or encrypted entries, more than `max_entries` entries, inconsistent headers.
inline std::vector<ZipEntry> read_zip_directory(const ByteSource& source, std::uint64_t offset, std::uint64_t length, std::size_t max_entries = 4096) {
  using detail::fail;
  using detail::zip_field;
  const std::string& what = source.name();
  if (offset > source.size() || length > source.size() - offset)
    fail<FormatError>(what, ": archive at [", offset, ", ", offset + length, ") is past the end (", source.size(), " bytes)");
  // The end record: 22 bytes plus a comment of up to 65535, at the archive's end.
  std::uint64_t tail = std::min<std::uint64_t>(length, 22 + 65535);
  std::vector<std::byte> end = source.read(offset + length - tail, tail);
  std::size_t at = end.size() >= 22 ? end.size() - 21 : 0;
  bool found = false;
  while (at > 0 && !found) {
    --at;
    found = zip_field(end, at, 4) == detail::zip_end && at + 22 + zip_field(end, at + 20, 2) == end.size();
  }
  if (!found) fail<FormatError>(what, ": no zip end record in the archive at byte ", offset, " (", length, " bytes): not a torch.save archive, or truncated");
  std::uint64_t entries = zip_field(end, at + 10, 2), directory_size = zip_field(end, at + 12, 4), directory_offset = zip_field(end, at + 16, 4);
  if (entries == 0xffff || directory_size == 0xffffffffu || directory_offset == 0xffffffffu) {  // zip64
    std::uint64_t end_at = length - tail + at;
    if (end_at < 20) fail<FormatError>(what, ": zip64 archive at byte ", offset, " without its locator");
    std::vector<std::byte> locator = source.read(offset + end_at - 20, 20);
    if (zip_field(locator, 0, 4) != detail::zip64_locator) fail<FormatError>(what, ": zip64 archive at byte ", offset, " without its locator");
    std::uint64_t record = zip_field(locator, 8, 8);
    if (record > length || length - record < 56) fail<FormatError>(what, ": zip64 end record at ", record, " is outside the archive");
    std::vector<std::byte> end64 = source.read(offset + record, 56);
    if (zip_field(end64, 0, 4) != detail::zip64_end) fail<FormatError>(what, ": bad zip64 end record at archive byte ", record);
    entries = zip_field(end64, 32, 8);
    directory_size = zip_field(end64, 40, 8);
    directory_offset = zip_field(end64, 48, 8);
  }
  if (directory_offset > length || directory_size > length - directory_offset)
    fail<FormatError>(what, ": zip central directory [", directory_offset, ", ", directory_offset + directory_size, ") is outside the archive (", length, " bytes)");
  if (entries > max_entries || entries * 46 > directory_size)
    fail<FormatError>(what, ": zip archive claims ", entries, " entries in a ", directory_size, "-byte directory (at most ", max_entries, ")");
  std::vector<std::byte> directory = source.read(offset + directory_offset, directory_size);
  std::vector<ZipEntry> result;
  std::size_t p = 0;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (p + 46 > directory.size() || zip_field(directory, p, 4) != detail::zip_central_header)
      fail<FormatError>(what, ": zip central directory entry ", e, " is malformed");
    std::uint64_t flags = zip_field(directory, p + 8, 2), method = zip_field(directory, p + 10, 2);
    ZipEntry entry;
    entry.crc32 = static_cast<std::uint32_t>(zip_field(directory, p + 16, 4));
    std::uint64_t packed = zip_field(directory, p + 20, 4), size = zip_field(directory, p + 24, 4);
    std::size_t name_length = zip_field(directory, p + 28, 2), extra_length = zip_field(directory, p + 30, 2), comment_length = zip_field(directory, p + 32, 2);
    std::uint64_t local = zip_field(directory, p + 42, 4);
    if (p + 46 + name_length + extra_length + comment_length > directory.size()) fail<FormatError>(what, ": zip central directory entry ", e, " runs past the directory");
    entry.name.assign(reinterpret_cast<const char*>(directory.data() + p + 46), name_length);
    // zip64 extra field: the 64-bit values of whichever fields are saturated, in order.
    for (std::size_t x = p + 46 + name_length; x + 4 <= p + 46 + name_length + extra_length;) {
      std::size_t id = zip_field(directory, x, 2), n = zip_field(directory, x + 2, 2);
      if (x + 4 + n > p + 46 + name_length + extra_length) fail<FormatError>(what, ": zip entry '", entry.name, "' has a malformed extra field");
      if (id == 1) {
        std::size_t y = x + 4;
        for (std::uint64_t* field : {&size, &packed, &local})
          if (*field == 0xffffffffu) {
            if (y + 8 > x + 4 + n) fail<FormatError>(what, ": zip entry '", entry.name, "' has a short zip64 field");
            *field = zip_field(directory, y, 8);
            y += 8;
          }
      }
      x += 4 + n;
    }
    if (flags & 1) fail<FormatError>(what, ": zip entry '", entry.name, "' is encrypted");
    if (method != 0 || packed != size)
      fail<FormatError>(what, ": zip entry '", entry.name, "' is compressed (method ", method, "); torch.save stores entries uncompressed");
    if (local > length || length - local < 30) fail<FormatError>(what, ": zip entry '", entry.name, "' has its header outside the archive");
    std::vector<std::byte> header = source.read(offset + local, 30);
    std::uint64_t local_name = zip_field(header, 26, 2), local_extra = zip_field(header, 28, 2);
    if (zip_field(header, 0, 4) != detail::zip_local_header || local_name != name_length)
      fail<FormatError>(what, ": zip entry '", entry.name, "' has a bad local header at archive byte ", local);
    std::uint64_t data = local + 30 + local_name + local_extra;
    if (data > length || size > length - data)
      fail<FormatError>(what, ": zip entry '", entry.name, "' ([", data, ", ", data + size, ")) runs past the archive's end (", length, " bytes)");
    entry.data_offset = offset + data;
    entry.size = size;
    result.push_back(std::move(entry));
    p += 46 + name_length + extra_length + comment_length;
  }
  return result;
}

}  // namespace shardalg
