#include <barrier>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../test_support.hpp"

using namespace shardalg;

namespace {

const std::filesystem::path torch_saved = std::filesystem::path(__FILE__).parent_path() / "data" / "dcp_torch113";

std::filesystem::path fresh_path(const std::string& name) {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("shardalg_writer_test_" + name);
  std::filesystem::remove_all(path);
  std::filesystem::remove_all(partial_folder(path));
  return path;
}

std::string archive_bytes(DType dtype, const Dims& shape, const std::string& data, bool zip64) {
  TorchArchiveWriter archive(dtype, shape, zip64);
  std::uint32_t crc = crc32(std::as_bytes(std::span(data.data(), data.size())));
  std::string prefix = archive.prefix();
  for (int i = 0; i < 4; ++i) prefix[archive.data_crc_offset() + static_cast<std::size_t>(i)] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return prefix + data + archive.suffix(crc);
}

// A safetensors file of the model's tensors in their dtypes, each 32-bit word of a tensor's bytes
// distinct (tensor index, word index), so a misplaced element shows.
Checkpoint state_values(const std::filesystem::path& folder, const ModelSpec& model) {
  std::filesystem::create_directories(folder);
  std::vector<SafetensorsItem> items;
  std::string data;
  for (std::size_t t = 0; t < model.tensors.size(); ++t) {
    const ModelTensor& tensor = model.tensors[t];
    items.push_back(SafetensorsItem{tensor.name, tensor.dtype, tensor.shape});
    std::size_t bytes = static_cast<std::size_t>(volume(tensor.shape) * element_bytes(tensor.dtype));
    for (std::size_t i = 0; i < bytes; i += 4) {
      std::uint32_t word = static_cast<std::uint32_t>(t << 20 | i / 4);
      data.append(reinterpret_cast<const char*>(&word), std::min<std::size_t>(4, bytes - i));
    }
  }
  std::ofstream(folder / "model.safetensors", std::ios::binary) << safetensors_header_bytes(items) << data;
  return Checkpoint::open(folder);
}

// Every rank's buffers under `layout`, loaded from the checkpoint (bytes no tensor covers stay 0xff).
std::vector<std::vector<std::vector<std::byte>>> rank_buffers(const Checkpoint& checkpoint, const ModelLayout& layout) {
  CheckpointReadPlanner planner(checkpoint.layout(), layout);
  std::vector<std::vector<std::vector<std::byte>>> ranks;
  for (index_t rank : layout.ranks()) {
    std::vector<std::vector<std::byte>> storage;
    std::vector<std::span<std::byte>> buffers;
    for (std::uint64_t size : rank_buffer_bytes(planner, rank)) storage.emplace_back(size, std::byte{0xff});
    for (auto& buffer : storage) buffers.emplace_back(buffer);
    load_reads(checkpoint, planner, planner.plan(rank, false), buffers);
    ranks.push_back(std::move(storage));
  }
  return ranks;
}

}  // namespace

TEST_CASE("PickleWriter: values and memoized globals read back by the restricted reader") {
  PickleWriter p;
  p.mark();
  for (std::int64_t v : {std::int64_t{0}, std::int64_t{255}, std::int64_t{256}, std::int64_t{65536}, std::int64_t{-1}, std::int64_t{1} << 40, INT64_MIN})
    p.integer(v);
  p.string("wörd");
  p.global("torch", "Size");
  p.global("torch", "Size");  // the second time from the memo
  p.tuple(0);
  p.reduce();
  p.tuple(-1);
  std::string bytes = p.finish();
  static constexpr PickleGlobal allowed[] = {{"torch", "Size"}};
  PickleDocument doc(bytes, allowed, "test pickle");
  using Ref = PickleDocument::Ref;
  Ref root = doc.root();
  REQUIRE(doc.size(root) == 10);
  std::vector<std::int64_t> ints;
  for (std::size_t i = 0; i < 7; ++i) ints.push_back(doc.integer(doc.item(root, i)));
  CHECK(ints == std::vector<std::int64_t>{0, 255, 256, 65536, -1, std::int64_t{1} << 40, INT64_MIN});
  CHECK(doc.string(doc.item(root, 7)) == "wörd");
  CHECK(doc.is_object_of(doc.item(root, 9), "Size"));
  CHECK(std::count(bytes.begin(), bytes.end(), 'S') == 1);  // "Size" spelled once
}

TEST_CASE("TorchArchiveWriter: the archive holds the tensor where it says, zip64 or not") {
  std::string data;
  for (int i = 0; i < 12; ++i) data.push_back(static_cast<char>(i));
  for (bool zip64 : {false, true}) {
    CAPTURE(zip64);
    std::string bytes = archive_bytes(DType::fp16, Dims{2, 3}, data, zip64);
    TorchArchiveWriter archive(DType::fp16, Dims{2, 3}, zip64);
    CHECK(bytes.size() == archive.size());
    CHECK(archive.data_offset() % 64 == 0);
    MemorySource source(std::as_bytes(std::span(bytes.data(), bytes.size())), "archive");
    SavedTensorData saved = read_saved_tensor(source, 0, bytes.size());
    CHECK(saved.dtype == DType::fp16);
    CHECK(saved.shape == Dims{2, 3});
    CHECK(saved.strides == Dims{3, 1});
    CHECK(saved.byte_offset == archive.data_offset());
    CHECK(saved.crc32 == crc32(std::as_bytes(std::span(data.data(), data.size()))));
    for (const ZipEntry& entry : read_zip_directory(source, 0, bytes.size()))
      CHECK(entry.crc32 == crc32(std::as_bytes(std::span(bytes.data() + entry.data_offset, static_cast<std::size_t>(entry.size)))));
  }
}

TEST_CASE("dcp_metadata_bytes: read back as the same layout, under either torch's module paths") {
  Checkpoint ck = Checkpoint::open(torch_saved);
  CHECK(ck.layout().dcp_flavor == DcpFlavor::torch_1_13);
  for (DcpFlavor flavor : {DcpFlavor::torch_1_13, DcpFlavor::torch_2}) {
    std::string bytes = dcp_metadata_bytes(ck.layout(), flavor);
    CheckpointLayout back = read_dcp_metadata(bytes, "written metadata");
    CHECK(back.dcp_flavor == flavor);
    std::vector<std::string> files = back.files, original = ck.layout().files;
    std::sort(files.begin(), files.end());
    std::sort(original.begin(), original.end());
    CHECK(files == original);  // the same files (listed in storage order, which may differ)
    REQUIRE(back.tensors.size() == ck.layout().tensors.size());
    for (std::size_t t = 0; t < back.tensors.size(); ++t) {
      const StoredTensor &a = back.tensors[t], &b = ck.layout().tensors[t];
      CHECK(a.name == b.name);
      CHECK(a.dtype == b.dtype);
      CHECK(a.shape == b.shape);
      REQUIRE(a.chunks.size() == b.chunks.size());
      for (std::size_t c = 0; c < a.chunks.size(); ++c) {
        CHECK(a.chunks[c].box == b.chunks[c].box);
        CHECK(back.files[a.chunks[c].file] == ck.layout().files[b.chunks[c].file]);
        CHECK(a.chunks[c].item_offset == b.chunks[c].item_offset);
        CHECK(a.chunks[c].item_bytes == b.chunks[c].item_bytes);
      }
    }
    REQUIRE(back.entries.size() == 2);
    CHECK(back.entries[1].name == ck.layout().entries[1].name);
    CHECK(back.entries[1].bytes == ck.layout().entries[1].bytes);
    CHECK(back.files[back.entries[1].file] == ck.layout().files[ck.layout().entries[1].file]);
  }
  CheckpointLayout no_file = ck.layout();
  no_file.tensors[0].chunks[0].file = shardalg::no_file;
  CHECK_THROWS_WITH_AS(dcp_metadata_bytes(no_file, DcpFlavor::torch_2), doctest::Contains("has no file"), Error);
}

TEST_CASE("for_each_band: bands tile the chunk in order, each within the limit") {
  struct Case {
    Dims shape;
    std::uint64_t max_bytes;
  };
  for (const Case& c : {Case{{1000, 64}, 4096}, Case{{4, 10, 16}, 100}, Case{{4, 10, 16}, 64}, Case{{7}, 8}, Case{{3, 5}, 1}, Case{{}, 4}, Case{{0, 5}, 64},
                        Case{{2, 3, 4, 5}, 1 << 20}}) {
    CAPTURE(c.shape);
    CAPTURE(c.max_bytes);
    std::uint64_t next = 0;
    std::size_t bands = 0;
    Dims strides = row_major_strides(c.shape);
    for_each_band(c.shape, 4, c.max_bytes, [&](const Dims& offset, const Dims& shape, std::uint64_t at) {
      ++bands;
      CHECK(at == next);  // contiguous and in order
      std::uint64_t bytes = static_cast<std::uint64_t>(volume(shape)) * 4;
      CHECK((bytes <= c.max_bytes || volume(shape) == 1));  // one element when even that exceeds the limit
      for (std::size_t d = 0; d < shape.size(); ++d) CHECK(offset[d] + shape[d] <= c.shape[d]);
      next += bytes;
    });
    CHECK(next == static_cast<std::uint64_t>(volume(c.shape)) * 4);
    CHECK((bands == 0) == (volume(c.shape) == 0));
  }
}

TEST_CASE("reshard the torch 1.13 checkpoint: to 3 ranks and back to 2, element by element, entries kept") {
  Checkpoint source = Checkpoint::open(torch_saved);
  std::filesystem::path three = fresh_path("three"), two = fresh_path("two");
  CheckpointOutput out = plan_dcp_output(source.layout(), layout_model(checkpoint_model(source.layout()), "fsdp dp=3"), DcpFlavor::torch_1_13);
  CHECK(out.layout.files == std::vector<std::string>{"__0_0.distcp", "__1_0.distcp", "__2_0.distcp"});
  std::vector<std::pair<std::uint64_t, std::uint64_t>> progress;
  WriteOptions options;
  options.threads = 3;
  options.memory_limit = 4096;
  options.progress = [&](std::uint64_t done, std::uint64_t total) { progress.emplace_back(done, total); };
  write_checkpoint(source, out, three, options);
  REQUIRE(!progress.empty());
  CHECK(progress.back() == std::pair<std::uint64_t, std::uint64_t>{68, 68});
  CHECK(!std::filesystem::exists(partial_folder(three)));
  Checkpoint resharded = Checkpoint::open(three);
  CHECK(verify_checkpoint(resharded).ok());
  const StoredTensor& w = resharded.layout().tensors[*resharded.layout().find("w")];
  REQUIRE(w.chunks.size() == 3);
  CHECK(w.chunks[2].box == ChunkMeta{Dims{4, 0}, Dims{1, 3}});
  CheckpointComparison same = compare_checkpoints(source, resharded, 2, 1024);
  CHECK(same.equal());
  CHECK(same.tensors == 2);
  CHECK(same.entries == 2);
  CHECK(same.bytes == 68);

  write_checkpoint(resharded, plan_dcp_output(resharded.layout(), layout_model(checkpoint_model(resharded.layout()), "replicated ranks=2"), DcpFlavor::torch_2), two);
  Checkpoint back = Checkpoint::open(two);
  CHECK(back.layout().dcp_flavor == DcpFlavor::torch_2);
  CHECK(back.layout().tensors[0].chunks.size() == 1);  // replicas saved once
  CHECK(compare_checkpoints(source, back).equal());

  // A flipped data byte is found and named by element.
  const StoredChunk& last = w.chunks[2];
  ChunkData where = resharded.data(*resharded.layout().find("w"), 2);
  {
    std::fstream file(three / resharded.layout().files[last.file], std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(where.byte_offset + 4));
    file.put('\x7f');
  }
  CheckpointComparison differs = compare_checkpoints(source, Checkpoint::open(three));
  REQUIRE(differs.differences.size() == 1);
  CHECK(differs.differences[0] == "tensor 'w': element [4, 1] differs");
  std::filesystem::remove_all(three);
  std::filesystem::remove_all(two);
}

TEST_CASE("write_checkpoint: an existing destination is refused; a failure leaves nothing that looks complete") {
  Checkpoint source = Checkpoint::open(torch_saved);
  CheckpointOutput out = plan_dcp_output(source.layout(), layout_model(checkpoint_model(source.layout()), "fsdp dp=2"), DcpFlavor::torch_2);
  std::filesystem::path existing = fresh_path("existing");
  std::filesystem::create_directories(existing);
  CHECK_THROWS_WITH_AS(write_checkpoint(source, out, existing), doctest::Contains("already exists"), Error);
  CHECK(std::filesystem::is_empty(existing));
  std::filesystem::remove_all(existing);

  // A source file cut short after planning: the copy fails part-way.
  std::filesystem::path cut = fresh_path("cut_source"), destination = fresh_path("after_failure");
  std::filesystem::copy(torch_saved, cut);
  Checkpoint damaged = Checkpoint::open(cut);
  std::filesystem::resize_file(cut / "__1_0.distcp", 100);
  std::filesystem::create_directories(partial_folder(destination) / "stale");  // left by an earlier, killed run
  CHECK_THROWS_AS(write_checkpoint(damaged, plan_dcp_output(damaged.layout(), layout_model(checkpoint_model(damaged.layout()), "fsdp dp=2"), DcpFlavor::torch_2), destination),
                  FormatError);
  CHECK(!std::filesystem::exists(destination));
  CHECK(!std::filesystem::exists(partial_folder(destination)));
  // A re-run from an intact source succeeds.
  write_checkpoint(source, out, destination);
  CHECK(compare_checkpoints(source, Checkpoint::open(destination)).equal());
  std::filesystem::remove_all(cut);
  std::filesystem::remove_all(destination);
}

namespace {

// Processes of a team as threads: their agreement meets at a barrier (as MPI's all-reduce does).
class ThreadTeam {
 public:
  explicit ThreadTeam(index_t processes) : failures_(static_cast<std::size_t>(processes)), meet_(processes) {}
  FailureAgreement agreement(index_t process) {
    return [this, process](const std::string& failure) {
      failures_[static_cast<std::size_t>(process)] = failure;
      meet_.arrive_and_wait();
      std::string agreed;
      for (std::size_t p = failures_.size(); p-- > 0 && agreed.empty();)
        if (!failures_[p].empty()) agreed = detail::concat("process ", p, ": ", failures_[p]);
      meet_.arrive_and_wait();  // all have read before the next step writes
      return agreed;
    };
  }
  // Runs work(process) on a thread per process; returns each one's error message ("" if none).
  template <class Work>
  std::vector<std::string> run(Work&& work) {
    std::vector<std::string> errors(failures_.size());
    std::vector<std::thread> threads;
    for (std::size_t p = 0; p < failures_.size(); ++p)
      threads.emplace_back([&, p] {
        try {
          work(static_cast<index_t>(p));
        } catch (const std::exception& e) {
          errors[p] = e.what();
        }
      });
    for (std::thread& t : threads) t.join();
    return errors;
  }

 private:
  std::vector<std::string> failures_;
  std::barrier<> meet_;
};

}  // namespace

TEST_CASE("write_checkpoint shared by a team: each process writes its files; together the same bytes as one process") {
  Checkpoint source = Checkpoint::open(torch_saved);
  CheckpointOutput out = plan_dcp_output(source.layout(), layout_model(checkpoint_model(source.layout()), "fsdp dp=5"), DcpFlavor::torch_2);
  std::filesystem::path alone = fresh_path("team_alone"), shared = fresh_path("team_shared");
  write_checkpoint(source, out, alone);
  const index_t processes = 3;
  ThreadTeam team(processes);
  std::vector<std::uint64_t> copied(processes, 0);
  std::vector<std::string> errors = team.run([&](index_t p) {
    WriteOptions options;
    options.share = ProcessShare{p, processes};
    options.agree = team.agreement(p);
    options.progress = [&copied, p](std::uint64_t done, std::uint64_t) { copied[static_cast<std::size_t>(p)] = done; };
    write_checkpoint(source, out, shared, options);
  });
  CHECK(errors == std::vector<std::string>(processes));
  CHECK(copied[0] + copied[1] + copied[2] == out.data_bytes);  // each element copied by one process
  CHECK(std::count(copied.begin(), copied.end(), 0) == 0);
  for (const std::string& name : out.layout.files) {
    std::ifstream a(alone / name, std::ios::binary), b(shared / name, std::ios::binary);
    CHECK_MESSAGE(std::string(std::istreambuf_iterator<char>(a), {}) == std::string(std::istreambuf_iterator<char>(b), {}), name);
  }
  // The check divided: the shares' byte counts add up, and a flipped byte is found by one share.
  Checkpoint written = Checkpoint::open(shared);
  const StoredTensor& w = written.layout().tensors[*written.layout().find("w")];
  ChunkData where = written.data(*written.layout().find("w"), 1);
  {
    std::fstream file(shared / written.layout().files[w.chunks[1].file], std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(where.byte_offset));
    file.put('\x7f');
  }
  Checkpoint flipped = Checkpoint::open(shared);
  std::uint64_t bytes = 0;
  std::size_t differences = 0, corrupted = 0;
  for (index_t p = 0; p < processes; ++p) {
    CheckpointComparison part = compare_checkpoints(source, flipped, 2, 1 << 20, true, 20, ProcessShare{p, processes});
    bytes += part.bytes;
    differences += part.differences.size();
    CheckpointVerification verified = verify_checkpoint(flipped, true, ProcessShare{p, processes});
    corrupted += verified.problems.size();
    CHECK(verified.chunks == flipped.layout().chunk_count());  // every process sees every chunk
  }
  CHECK(bytes == 68);
  CHECK(differences == 1);
  CHECK(corrupted == 1);  // the chunk's CRC-32, checked by its one owner
  std::filesystem::remove_all(alone);
  std::filesystem::remove_all(shared);
}

TEST_CASE("write_checkpoint shared by a team: one process failing stops all; nothing is left; a re-run succeeds") {
  std::filesystem::path cut = fresh_path("team_cut"), destination = fresh_path("team_after_failure");
  std::filesystem::copy(torch_saved, cut);
  Checkpoint damaged = Checkpoint::open(cut);
  std::filesystem::resize_file(cut / "__1_0.distcp", 100);  // only the process writing rank 1's rows reads it
  CheckpointOutput out = plan_dcp_output(damaged.layout(), layout_model(checkpoint_model(damaged.layout()), "fsdp dp=2"), DcpFlavor::torch_2);
  ThreadTeam team(2);
  std::vector<std::string> errors = team.run([&](index_t p) {
    WriteOptions options;
    options.share = ProcessShare{p, 2};
    options.agree = team.agreement(p);
    write_checkpoint(damaged, out, destination, options);
  });
  REQUIRE(errors.size() == 2);
  // The failed process reports its own error; the other is told it, naming the process.
  std::size_t failed = errors[0].starts_with("process ") ? 1 : 0;
  CHECK(errors[failed].find("__1_0.distcp") != std::string::npos);
  CHECK(errors[1 - failed] == detail::concat("process ", failed, ": ", errors[failed]));
  CHECK(!std::filesystem::exists(destination));
  CHECK(!std::filesystem::exists(partial_folder(destination)));
  std::filesystem::remove_all(cut);
  std::filesystem::copy(torch_saved, cut);
  ThreadTeam again(2);
  errors = again.run([&](index_t p) {
    WriteOptions options;
    options.share = ProcessShare{p, 2};
    options.agree = again.agreement(p);
    write_checkpoint(Checkpoint::open(cut), out, destination, options);
  });
  CHECK(errors == std::vector<std::string>(2));
  CHECK(compare_checkpoints(Checkpoint::open(torch_saved), Checkpoint::open(destination)).equal());
  std::filesystem::remove_all(cut);
  std::filesystem::remove_all(destination);
}

TEST_CASE("dcp_flavor_for: the version asked for, else the source's; other versions named") {
  Checkpoint source = Checkpoint::open(torch_saved);
  CHECK(dcp_flavor_for(source.layout(), "") == DcpFlavor::torch_1_13);
  CHECK(dcp_flavor_for(source.layout(), "2") == DcpFlavor::torch_2);
  CheckpointLayout safetensors;
  safetensors.format = CheckpointFormat::safetensors;
  CHECK(dcp_flavor_for(safetensors, "") == DcpFlavor::torch_2);
  CHECK(dcp_flavor_for(safetensors, "1.13") == DcpFlavor::torch_1_13);
  CHECK_THROWS_WITH_AS(dcp_flavor_for(source.layout(), "2.1"), doctest::Contains("torch version '2.1'"), Error);
}

TEST_CASE("plan outputs: destinations must place every tensor; safetensors refuses entries unless skipped") {
  Checkpoint source = Checkpoint::open(torch_saved);
  ModelSpec only_w{"only_w", {ModelTensor{"w", Dims{5, 3}, TensorRole::replicated, DType::fp32}}};
  CHECK_THROWS_WITH_AS(plan_dcp_output(source.layout(), layout_model(only_w, "fsdp dp=2"), DcpFlavor::torch_2), doctest::Contains("no place for tensor 'b'"), Error);
  CHECK_THROWS_WITH_AS(plan_safetensors_output(source.layout(), 1000), doctest::Contains("2 non-tensor entries ('step', 'name')"), Error);
  CheckpointOutput out = plan_safetensors_output(source.layout(), 1000, true);
  CHECK(out.layout.files == std::vector<std::string>{"model.safetensors"});
  CHECK(out.index_json.empty());
}

TEST_CASE("consolidate to Hugging Face safetensors: files of bounded size, an index, equal tensors") {
  Checkpoint source = Checkpoint::open(torch_saved);
  std::filesystem::path destination = fresh_path("consolidated");
  CheckpointOutput out = plan_safetensors_output(source.layout(), 40, true);  // w (60 bytes) alone, then b
  CHECK(out.layout.files == std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
  write_checkpoint(source, out, destination);
  CHECK(std::filesystem::exists(destination / "model.safetensors.index.json"));
  Checkpoint consolidated = Checkpoint::open(destination);
  CHECK(consolidated.layout().format == CheckpointFormat::safetensors);
  CHECK(verify_checkpoint(consolidated).ok());
  CheckpointComparison result = compare_checkpoints(source, consolidated);
  REQUIRE(result.differences.size() == 2);  // the entries, which safetensors cannot hold
  CHECK(result.differences[0] == "entry 'step' is missing");
  CHECK(result.tensors == 2);
  std::filesystem::remove_all(destination);
}

TEST_CASE("parse_byte_size: decimal and binary units; bad text named") {
  CHECK(parse_byte_size("4096", "size") == 4096);
  CHECK(parse_byte_size("5GB", "size") == 5'000'000'000u);
  CHECK(parse_byte_size("256MiB", "size") == 268'435'456u);
  CHECK(parse_byte_size("1.5 kB", "size") == 1500);
  CHECK_THROWS_WITH_AS(parse_byte_size("12 parsecs", "--memory-limit"), doctest::Contains("unknown unit 'parsecs'"), ParseError);
  CHECK_THROWS_WITH_AS(parse_byte_size("GB", "--memory-limit"), doctest::Contains("--memory-limit 'GB'"), ParseError);
  CHECK_THROWS_AS(parse_byte_size("100000000TB", "size"), OverflowError);
}

TEST_CASE("FSDP2+TP with uneven strided shards (n = 7, dp = 3, tp = 2) saved, then resharded on disk to dp = 2, tp = 3") {
  ModelSpec model{"strided", {ModelTensor{"q", Dims{7, 4}, TensorRole::column_parallel, DType::fp32}, ModelTensor{"o", Dims{4, 7}, TensorRole::row_parallel, DType::fp32}}};
  std::filesystem::path values = fresh_path("strided_values"), saved_at = fresh_path("strided_6"), moved_at = fresh_path("strided_6b");
  std::filesystem::create_directories(values);
  {
    std::vector<SafetensorsItem> items;
    std::string data;
    for (const ModelTensor& t : model.tensors) {
      items.push_back(SafetensorsItem{t.name, t.dtype, t.shape});
      for (index_t i = 0; i < volume(t.shape); ++i) {
        float v = static_cast<float>(100 * items.size() + static_cast<std::size_t>(i));
        data.append(reinterpret_cast<const char*>(&v), sizeof v);
      }
    }
    std::ofstream(values / "model.safetensors", std::ios::binary) << safetensors_header_bytes(items) << data;
  }
  Checkpoint flat = Checkpoint::open(values);
  write_checkpoint(flat, plan_dcp_output(flat.layout(), layout_model(model, "fsdp-tp dp=3,tp=2"), DcpFlavor::torch_2), saved_at);
  Checkpoint saved = Checkpoint::open(saved_at);
  ModelMatch as_saved = match_model(saved.layout(), model, "fsdp-tp dp=3,tp=2");
  CHECK(as_saved.problems.empty());
  CHECK(as_saved.matches());  // the chunks are exactly the strided layout's boxes
  // tp halves of 4 and 3 rows, each split over dp = 3 torch.chunk style: 2 + 2 (+ nothing) and 1 + 1 + 1.
  CHECK(saved.layout().tensors[*saved.layout().find("q")].chunks.size() == 5);
  write_checkpoint(saved, plan_dcp_output(saved.layout(), layout_model(model, "fsdp-tp dp=2,tp=3"), DcpFlavor::torch_2), moved_at);
  Checkpoint moved = Checkpoint::open(moved_at);
  CHECK(match_model(moved.layout(), model, "fsdp-tp dp=2,tp=3").matches());
  CHECK(verify_checkpoint(moved).ok());
  CheckpointComparison result = compare_checkpoints(flat, moved);
  CHECK(result.equal());
  CHECK(result.bytes == 2 * 28 * 4);
  for (const auto& path : {values, saved_at, moved_at}) std::filesystem::remove_all(path);
}

TEST_CASE("ZeRO-3 elastic with Adam state: DP 8 -> 6 -> 12 on disk, consolidated, equals the original parameters and states") {
  using R = TensorRole;
  ModelSpec model = with_optimizer(ModelSpec{"zero", {{"embed", Dims{37, 5}, R::vocab_parallel}, {"q", Dims{5, 5}, R::column_parallel}, {"norm", Dims{5}, R::replicated}}},
                                   "adam");
  std::filesystem::path values_at = fresh_path("zero_values"), at8 = fresh_path("zero_8"), at6 = fresh_path("zero_6"), at12 = fresh_path("zero_12"),
                        whole = fresh_path("zero_whole");
  Checkpoint values = state_values(values_at, model);
  std::optional<Checkpoint> saved;
  std::vector<std::filesystem::path> steps{at8, at6, at12};
  std::vector<std::string> recipes{"zero3 dp=8", "zero3 dp=6", "zero3 dp=12"};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    CAPTURE(recipes[i]);
    const Checkpoint& from = saved ? *saved : values;
    write_checkpoint(from, plan_dcp_output(from.layout(), layout_model(model, recipes[i]), DcpFlavor::torch_2), steps[i]);
    saved.emplace(Checkpoint::open(steps[i]));
    ModelMatch match = match_model(saved->layout(), model, recipes[i]);
    CHECK(match.problems.empty());
    CHECK(match.matches());  // the chunks are the flat padded partitions' boxes, states included
  }
  const Checkpoint& source = *saved;
  // 210 bf16 elements in the decay group over 12 ranks: a rank's partition of embed's master holds
  // a piece of a row, so the chunks are more than the tensors.
  CHECK(source.layout().chunk_count() > source.layout().tensors.size());
  write_checkpoint(source, plan_safetensors_output(source.layout(), 1 << 20, false), whole);
  CheckpointComparison result = compare_checkpoints(values, Checkpoint::open(whole));
  CHECK(result.equal());
  CHECK(result.tensors == model.tensors.size());
  CHECK(result.bytes == static_cast<std::uint64_t>(2 * model.parameter_count() + 4 * model.state_count()));
  for (const auto& path : {values_at, at8, at6, at12, whole}) std::filesystem::remove_all(path);
}

TEST_CASE("experts with their Adam state: EP 2 -> 4 -> 2 on disk, every rank's buffers equal to the original's") {
  using R = TensorRole;
  ModelSpec model = with_optimizer(
      ModelSpec{"experts", {{"q", Dims{6, 5}, R::column_parallel}, {"w1", Dims{4, 3, 5}, R::expert_w1}, {"w2", Dims{4, 5, 3}, R::expert_w2}, {"norm", Dims{5}, R::replicated}}},
      "adam");
  std::filesystem::path values_at = fresh_path("ep_values"), ep2 = fresh_path("ep_2"), ep4 = fresh_path("ep_4"), back = fresh_path("ep_2b");
  Checkpoint values = state_values(values_at, model);
  const std::string from = "ep ep=2,dp=4,experts=zero1", to = "ep ep=4,dp=4,experts=zero1";
  write_checkpoint(values, plan_dcp_output(values.layout(), layout_model(model, from), DcpFlavor::torch_2), ep2);
  Checkpoint original = Checkpoint::open(ep2);
  write_checkpoint(original, plan_dcp_output(original.layout(), layout_model(model, to), DcpFlavor::torch_2), ep4);
  Checkpoint middle = Checkpoint::open(ep4);
  CHECK(match_model(middle.layout(), model, to).matches());
  write_checkpoint(middle, plan_dcp_output(middle.layout(), layout_model(model, from), DcpFlavor::torch_2), back);
  Checkpoint returned = Checkpoint::open(back);
  CHECK(match_model(returned.layout(), model, from).matches());
  CHECK(compare_checkpoints(values, returned).equal());
  // Loaded at EP 2, each rank's partitions (its experts' exp_avg included) equal the original's.
  ModelLayout layout = layout_model(model, from);
  auto before = rank_buffers(original, layout), after = rank_buffers(returned, layout);
  REQUIRE(before.size() == 4);
  CHECK(before == after);
  // A rank's expert exp_avg partition holds exactly its experts: EP rank 1 (ranks 1 and 3 under
  // torchtitan's (edp, ep) mesh) holds experts 2 and 3 of w1.
  std::size_t avg = *layout.find("optimizer.state.w1.exp_avg");
  for (const Piece& piece : layout[avg].layout.pieces(1)) CHECK(piece.global.offset[0] >= 2);
  for (const auto& path : {values_at, ep2, ep4, back}) std::filesystem::remove_all(path);
}

TEST_CASE("safetensors per rank (torch's sharded Hugging Face files): boxes with their saved offsets, read back as chunks") {
  using R = TensorRole;
  ModelSpec model = with_optimizer(ModelSpec{"sharded", {{"embed", Dims{11, 4}, R::vocab_parallel}, {"norm", Dims{4}, R::replicated}}}, "adam");
  std::filesystem::path values_at = fresh_path("st_values"), per_rank = fresh_path("st_ranks"), back = fresh_path("st_back");
  Checkpoint values = state_values(values_at, model);
  const std::string recipe = "zero3 dp=3";
  write_checkpoint(values, plan_reshard_output(values.layout(), layout_model(model, recipe), "safetensors"), per_rank);
  // embed's 44 elements at dp = 3: windows of 15; rank 1's window [15, 30) is three boxes (rest of
  // row 3, rows 4-6, start of row 7), so each rank has up to three files.
  CHECK(std::filesystem::exists(per_rank / "shard-00001-model-00001-of-00003.safetensors"));
  CHECK(std::filesystem::exists(per_rank / "shard-00002-model-00003-of-00003.safetensors"));
  CHECK_FALSE(std::filesystem::exists(per_rank / "model.safetensors.index.json"));
  {
    InputFile file((per_rank / "shard-00002-model-00001-of-00003.safetensors").string());
    SafetensorsHeader header = read_safetensors_header(file);
    CHECK(header.metadata.at(std::string(dcp_sharding_info_key)).find("\"embed\":{\"saved_offsets\":[3,3]}") != std::string::npos);
  }
  Checkpoint saved = Checkpoint::open(per_rank);
  CHECK(saved.layout().format == CheckpointFormat::safetensors);
  CHECK(saved.layout().tensors[*saved.layout().find("embed")].shape == Dims{11, 4});
  ModelMatch match = match_model(saved.layout(), model, recipe);
  CHECK(match.problems.empty());
  CHECK(match.matches());
  CHECK(verify_checkpoint(saved).ok());
  CHECK(compare_checkpoints(values, saved).equal());
  write_checkpoint(saved, plan_reshard_output(saved.layout(), layout_model(model, "fsdp dp=2"), "dcp"), back);
  CHECK(compare_checkpoints(values, Checkpoint::open(back)).equal());
  // A missing rank file leaves a hole that verification names, and that no conversion or load
  // plans over (its elements would be left unwritten).
  std::filesystem::remove(per_rank / "shard-00003-model-00001-of-00003.safetensors");
  Checkpoint holed = Checkpoint::open(per_rank);
  CHECK_FALSE(verify_checkpoint(holed).ok());
  SHARDALG_CHECK_THROWS_CONTAINING(plan_reshard_output(holed.layout(), layout_model(model, "fsdp dp=2"), "dcp"), Error,
                                   "read plan: tensor 'embed' is incomplete in the checkpoint: elements at offsets [7, 2] sizes [1, 1] are in no chunk");
  // Outputs and options that do not go together are refused.
  SHARDALG_CHECK_THROWS_CONTAINING(plan_reshard_output(values.layout(), layout_model(model, recipe), "npz"), Error, "unknown checkpoint format 'npz' (dcp, safetensors)");
  SHARDALG_CHECK_THROWS_CONTAINING(plan_reshard_output(values.layout(), layout_model(model, recipe), "safetensors", "2"), Error, "applies to the dcp format");
  Checkpoint with_entries = Checkpoint::open(torch_saved);
  SHARDALG_CHECK_THROWS_CONTAINING(plan_reshard_output(with_entries.layout(), layout_model(checkpoint_model(with_entries.layout()), "fsdp dp=2"), "safetensors"),
                                   Error, "non-tensor entries");
  for (const auto& path : {values_at, per_rank, back}) std::filesystem::remove_all(path);
}

TEST_CASE("sharded safetensors from elsewhere: bad DCP_SHARDING_INFO is named") {
  std::filesystem::path folder = fresh_path("st_bad");
  std::filesystem::create_directories(folder);
  auto write = [&](const std::string& name, const std::string& info) {
    std::ofstream(folder / name, std::ios::binary) << safetensors_header_bytes({SafetensorsItem{"w", DType::fp32, Dims{1, 2}}}, {{"DCP_SHARDING_INFO", info}})
                                                  << std::string(8, '\0');
  };
  write("shard-00001-model-00001-of-00001.safetensors", "{\"w\": {\"saved_offsets\": [0, 0]}}");
  write("shard-00002-model-00001-of-00001.safetensors", "{\"w\": {\"saved_offsets\": [1, 0]}}");
  CHECK(Checkpoint::open(folder).layout().tensors[0].shape == Dims{2, 2});
  write("shard-00002-model-00001-of-00001.safetensors", "{\"w\": {\"saved_offsets\": [1]}}");
  SHARDALG_CHECK_THROWS_CONTAINING(Checkpoint::open(folder), FormatError, "tensor 'w' has 2 dims but saved_offsets [1] has 1");
  write("shard-00002-model-00001-of-00001.safetensors", "{\"v\": {}}");
  SHARDALG_CHECK_THROWS_CONTAINING(Checkpoint::open(folder), FormatError, "gives no \"saved_offsets\" array for tensor 'w'");
  write("shard-00002-model-00001-of-00001.safetensors", "{\"w\": ");
  SHARDALG_CHECK_THROWS_CONTAINING(Checkpoint::open(folder), FormatError, "DCP_SHARDING_INFO is not valid JSON");
  std::ofstream(folder / "shard-00002-model-00001-of-00001.safetensors", std::ios::binary)
      << safetensors_header_bytes({SafetensorsItem{"w", DType::fp32, Dims{1, 2}}}) << std::string(8, '\0');
  SHARDALG_CHECK_THROWS_CONTAINING(Checkpoint::open(folder), FormatError, "only sharded files, with DCP_SHARDING_INFO, may each hold a part");
  std::filesystem::remove_all(folder);
}
