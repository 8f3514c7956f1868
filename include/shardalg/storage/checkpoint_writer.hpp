// Writing a planned checkpoint (checkpoint_output.hpp) from a source checkpoint, nothing lost:
//
// - Output goes to a hidden partial folder beside the destination (`.NAME.partial`) and is
//   renamed to the destination only when every file is complete and synced, so a crash, a kill or
//   a full disk never leaves a checkpoint that looks complete. A partial folder left by an earlier
//   run is removed first; an existing destination is refused.
// - The free space is checked first (a checkpoint that cannot fit fails before any copy), files
//   get their final size, then chunks are copied on threads in bands of bounded size:
//   each band is read from the source chunks that overlap it, checksummed (DCP's torch.save
//   archives carry a CRC-32 per entry) and written at its place. Memory: the band and bounce
//   buffers, at most the memory limit whatever the checkpoint's size.
// - The metadata (DCP's .metadata, or the Hugging Face index) is written last; files, the folder
//   and its parent are synced around the rename, as DCP's own writer syncs its files.
// - Processes under mpirun share the work: each writes the files owners_by_size gives it, reading
//   only what they need; they agree after each step, so a failure anywhere stops all of them.
//
// Example:
//   Checkpoint src = Checkpoint::open("ck8");
//   CheckpointOutput out = plan_dcp_output(src.layout(), layout_model(checkpoint_model(src.layout()), "fsdp dp=6"), DcpFlavor::torch_2);
//   write_checkpoint(src, out, "ck6", {.threads = 4});
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>

#include "shardalg/core/work_share.hpp"
#include "shardalg/exec/agreement.hpp"
#include "shardalg/storage/checkpoint_output.hpp"
#include "shardalg/storage/chunk_bands.hpp"
#include "shardalg/storage/dcp_metadata_writer.hpp"

namespace shardalg {

struct WriteOptions {
  unsigned threads = 4;  // of this process
  std::uint64_t memory_limit = std::uint64_t{256} << 20;  // band and bounce buffers of all threads
  bool sync = true;                                       // fsync files and folders before and after the rename
  // Called on the calling thread about every `progress_interval` and once at the end with
  // (bytes written, bytes to write) by this process.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  std::chrono::milliseconds progress_interval{200};
  // Processes writing one checkpoint together (see write_checkpoint); by default this one alone.
  ProcessShare share;
  FailureAgreement agree;
};

namespace detail {

// A file being written (O_EXCL: never an existing file).
class OutputFile {
 public:
  explicit OutputFile(const std::filesystem::path& path) : name_(path.string()) {
    fd_ = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create '", name_, "': ", std::strerror(errno));
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Sets the file's final size (sparse: space is taken as bytes are written, so nothing is
  // written twice; the free space was checked before).
  void set_size(std::uint64_t bytes) {
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) fail("cannot size '", name_, "' to ", bytes, " bytes: ", std::strerror(errno));
  }
  void write(std::uint64_t offset, const void* data, std::uint64_t bytes) const {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      ssize_t put = ::pwrite(fd_, p, static_cast<std::size_t>(std::min<std::uint64_t>(bytes, std::uint64_t{1} << 30)), static_cast<off_t>(offset));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) fail("writing '", name_, "' at byte ", offset, ": ", put < 0 ? std::strerror(errno) : "no progress");
      p += put;
      offset += static_cast<std::uint64_t>(put);
      bytes -= static_cast<std::uint64_t>(put);
    }
  }
  void sync() const {
    if (::fsync(fd_) != 0) fail("syncing '", name_, "': ", std::strerror(errno));
  }

 private:
  std::string name_;
  int fd_ = -1;
};

inline void sync_folder(const std::filesystem::path& folder) {
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open folder '", folder.string(), "' to sync it: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail("syncing folder '", folder.string(), "': ", std::strerror(err));
}

inline void store_le32(char* p, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

}  // namespace detail

// Where a destination's output is assembled before the rename.
inline std::filesystem::path partial_folder(const std::filesystem::path& destination) {
  std::filesystem::path clean = destination.lexically_normal();
  if (!clean.has_filename()) clean = clean.parent_path();
  return clean.parent_path() / ("." + clean.filename().string() + ".partial");
}

// Writes `output` (planned from `source`'s layout) as the folder `destination`.
// A team (`options.share`, `options.agree`: processes under mpirun, sharing one file system)
// divides the files by size (owners_by_size); each process reads only the source chunks its files
// need. The leader (process 0) prepares the partial folder, then all write and sync their files,
// then the leader writes the metadata and renames; the processes agree after each step.
// Errors: the destination exists; a source chunk unreadable or inconsistent (FormatError naming
// it); a write, reservation or sync failure (naming the file and errno); another process's failure
// (its message, naming the process). On any error the partial folder is removed and the
// destination does not exist.
inline void write_checkpoint(const Checkpoint& source, const CheckpointOutput& output, const std::filesystem::path& destination, const WriteOptions& options = {}) {
  namespace fs = std::filesystem;
  check_share(options.share);
  const fs::path partial = partial_folder(destination);
  const CheckpointLayout& layout = output.layout;
  // Each step agreed by the team; after a failure anywhere the leader removes the partial folder.
  auto step = [&](bool here, auto&& work) {
    agreed_step(options.agree, here, work, [&] {
      std::error_code ec;
      if (options.share.leader()) fs::remove_all(partial, ec);
    });
  };
  step(options.share.leader(), [&] {
    std::error_code ec;
    if (fs::exists(destination, ec)) detail::fail("destination '", destination.string(), "' already exists (nothing was written; remove it or choose another)");
    fs::remove_all(partial, ec);
    if (ec) detail::fail("cannot remove the partial folder '", partial.string(), "' of an earlier run: ", ec.message());
    fs::create_directories(partial, ec);
    if (ec) detail::fail("cannot create '", partial.string(), "': ", ec.message());
    if (fs::space_info space = fs::space(partial, ec); !ec && space.available < output.total_bytes())
      detail::fail("not enough space for '", destination.string(), "': the checkpoint needs ", output.total_bytes(), " bytes, ", space.available, " are free");
  });
  const std::vector<index_t> owners = owners_by_size(output.file_bytes, options.share.processes);
  auto mine = [&](std::uint32_t file) { return owners[file] == options.share.process; };
  step(true, [&] {
    std::vector<std::unique_ptr<detail::OutputFile>> files(layout.files.size());
    for (std::uint32_t f = 0; f < layout.files.size(); ++f) {
      if (!mine(f)) continue;
      files[f] = std::make_unique<detail::OutputFile>(partial / layout.files[f]);
      files[f]->set_size(output.file_bytes[f]);
      if (f < output.file_headers.size()) files[f]->write(0, output.file_headers[f].data(), output.file_headers[f].size());
    }
    std::vector<std::size_t> chunks;  // this process's, largest first as planned
    std::uint64_t to_copy = 0;
    for (std::size_t i = 0; i < output.chunks.size(); ++i) {
      const OutputChunk& oc = output.chunks[i];
      const StoredChunk& chunk = layout.tensors[oc.tensor].chunks[oc.chunk];
      if (!mine(chunk.file)) continue;
      chunks.push_back(i);
      to_copy += static_cast<std::uint64_t>(volume(chunk.box.sizes) * element_bytes(layout.tensors[oc.tensor].dtype));
    }
    unsigned threads = std::max(1u, options.threads);
    std::uint64_t per_thread = std::max<std::uint64_t>(options.memory_limit / threads, 1 << 16);
    std::uint64_t band_bytes = per_thread / 2, bounce_limit = per_thread / 2;
    std::atomic<std::uint64_t> done{0};
    std::vector<std::vector<std::byte>> bands(threads), bounces(threads);
    auto copy_chunk = [&](unsigned worker, std::size_t task) {
      std::vector<std::byte>& band = bands[worker];
      const OutputChunk& oc = output.chunks[chunks[task]];
      const StoredTensor& tensor = layout.tensors[oc.tensor];
      const StoredChunk& chunk = tensor.chunks[oc.chunk];
      const detail::OutputFile& file = *files[chunk.file];
      std::uint64_t element = static_cast<std::uint64_t>(element_bytes(tensor.dtype));
      std::uint32_t crc = 0;
      for_each_band(chunk.box.sizes, element, band_bytes, [&](const Dims& offset, const Dims& shape, std::uint64_t at) {
        std::uint64_t bytes = static_cast<std::uint64_t>(volume(shape)) * element;
        if (bytes > band.size()) band.resize(static_cast<std::size_t>(bytes));
        read_band(source, oc.source_tensor, oc.reads, offset, shape, band.data(), bounces[worker], bounce_limit);
        if (layout.format == CheckpointFormat::dcp) crc = crc32(std::span(band.data(), static_cast<std::size_t>(bytes)), crc);
        file.write(oc.data_offset + at, band.data(), bytes);
        done += bytes;
      });
      if (layout.format == CheckpointFormat::dcp) {
        TorchArchiveWriter archive(tensor.dtype, chunk.box.sizes);
        std::string prefix = archive.prefix();
        detail::store_le32(prefix.data() + archive.data_crc_offset(), crc);
        file.write(chunk.item_offset, prefix.data(), prefix.size());
        std::string suffix = archive.suffix(crc);
        file.write(chunk.item_offset + archive.data_offset() + archive.data_bytes(), suffix.data(), suffix.size());
      }
    };
    auto report = [&] {
      if (options.progress) options.progress(done, to_copy);
    };
    run_chunk_tasks(chunks.size(), threads, copy_chunk, report, options.progress_interval);
    for (const OutputEntry& e : output.entries) {
      const StoredEntry& entry = layout.entries[e.entry];
      if (!mine(entry.file)) continue;
      std::vector<std::byte> bytes = source.read_entry(e.source_entry);
      files[entry.file]->write(entry.offset, bytes.data(), bytes.size());
    }
    report();
    if (options.sync)
      for (auto& file : files)
        if (file) file->sync();
  });
  step(options.share.leader(), [&] {
    std::string metadata = layout.format == CheckpointFormat::dcp ? dcp_metadata_bytes(layout, layout.dcp_flavor) : output.index_json;
    if (!metadata.empty()) {
      detail::OutputFile file(partial / (layout.format == CheckpointFormat::dcp ? ".metadata" : "model.safetensors.index.json"));
      file.write(0, metadata.data(), metadata.size());
      if (options.sync) file.sync();
    }
    if (options.sync) detail::sync_folder(partial);
    std::error_code ec;
    fs::rename(partial, destination, ec);
    if (ec) detail::fail("cannot rename '", partial.string(), "' to '", destination.string(), "': ", ec.message());
    if (options.sync) detail::sync_folder(partial.parent_path().empty() ? fs::path(".") : partial.parent_path());
  });
}

}  // namespace shardalg
