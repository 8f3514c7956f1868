// Where stored bytes come from: a file read with pread (no whole-file copies), or memory (tests,
// fuzzing). Every read is checked against the source's size first, so a record that points past
// the end of a file gives an error naming the file, never a short read taken as data.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "shardalg/core/error.hpp"

namespace shardalg {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  // What the source is, for errors ("file 'ck/__0_0.distcp'").
  virtual const std::string& name() const = 0;
  // Fills `out` from `offset`. Error naming the source when [offset, offset + out.size()) is
  // not inside it.
  void read(std::uint64_t offset, std::span<std::byte> out) const {
    if (offset > size() || out.size() > size() - offset)
      detail::fail<FormatError>(name(), ": bytes [", offset, ", ", offset + out.size(), ") are past its end (", size(), " bytes)");
    read_inside(offset, out);
  }
  std::vector<std::byte> read(std::uint64_t offset, std::uint64_t length) const {
    if (offset > size() || length > size() - offset)
      detail::fail<FormatError>(name(), ": bytes [", offset, ", ", offset + length, ") are past its end (", size(), " bytes)");
    std::vector<std::byte> bytes(static_cast<std::size_t>(length));
    read_inside(offset, bytes);
    return bytes;
  }

 protected:
  virtual void read_inside(std::uint64_t offset, std::span<std::byte> out) const = 0;
};

// Bytes in memory (not owned).
class MemorySource final : public ByteSource {
 public:
  MemorySource(std::span<const std::byte> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  const std::string& name() const override { return name_; }

 private:
  void read_inside(std::uint64_t offset, std::span<std::byte> out) const override {
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
  }
  std::span<const std::byte> bytes_;
  std::string name_;
};

// A file opened for reading; pread is thread-safe, so one InputFile serves every reader thread.
class InputFile final : public ByteSource {
 public:
  explicit InputFile(const std::string& path) : name_("file '" + path + "'") {
    // O_NONBLOCK: opening a named pipe must not wait for a writer (regular files ignore it).
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) detail::fail<FormatError>("cannot open ", name_, ": ", std::strerror(errno));
    struct stat info {};
    if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd_);
      detail::fail<FormatError>(name_, " is not a regular file");
    }
    size_ = static_cast<std::uint64_t>(info.st_size);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile() override { ::close(fd_); }

  std::uint64_t size() const override { return size_; }
  const std::string& name() const override { return name_; }

 private:
  void read_inside(std::uint64_t offset, std::span<std::byte> out) const override {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t got = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) detail::fail<FormatError>("reading ", name_, " at byte ", offset + done, ": ", got < 0 ? std::strerror(errno) : "unexpected end of file");
      done += static_cast<std::size_t>(got);
    }
  }
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::string name_;
};

// A whole file mapped read-only (the page cache's pages, no copy): for a file parsed at once,
// such as DCP's .metadata.
class MappedFile {
 public:
  explicit MappedFile(const InputFile& file, const std::string& path) : size_(file.size()) {
    if (size_ == 0) return;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) detail::fail<FormatError>("cannot open ", file.name(), ": ", std::strerror(errno));
    void* at = ::mmap(nullptr, static_cast<std::size_t>(size_), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (at == MAP_FAILED) detail::fail<FormatError>("cannot map ", file.name(), ": ", std::strerror(errno));
    data_ = static_cast<const char*>(at);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_) ::munmap(const_cast<char*>(data_), static_cast<std::size_t>(size_));
  }
  std::string_view view() const { return data_ ? std::string_view(data_, static_cast<std::size_t>(size_)) : std::string_view(); }

 private:
  const char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

namespace detail {

// Little-endian integers from bytes (formats on disk are little-endian whatever the host). On a
// little-endian host one unaligned load: the loop alone stayed a loop in GCC 12's code, and
// pickle readers load an integer or more per opcode.
template <class T>
T load_le(const std::byte* p) {
  if constexpr (std::endian::native == std::endian::little) {
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
  } else {
    std::uint64_t value = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) value = (value << 8) | std::to_integer<std::uint8_t>(p[i]);
    return static_cast<T>(value);
  }
}

}  // namespace detail
}  // namespace shardalg
