#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <cstring>

#include "../test_support.hpp"

using namespace shardalg;

namespace {

const std::filesystem::path torch_checkpoint = std::filesystem::path(__FILE__).parent_path() / "data" / "dcp_torch113";

// A folder of safetensors files holding `tensors` (fp32, values 1000 * t + i), `per_file` tensors per file.
std::filesystem::path safetensors_folder(const std::string& name, const std::vector<std::pair<std::string, Dims>>& tensors, std::size_t per_file) {
  std::filesystem::path folder = std::filesystem::temp_directory_path() / ("shardalg_test_" + name);
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  for (std::size_t first = 0; first < tensors.size(); first += per_file) {
    std::vector<SafetensorsItem> items;
    std::string data;
    for (std::size_t t = first; t < std::min(tensors.size(), first + per_file); ++t) {
      items.push_back(SafetensorsItem{tensors[t].first, DType::fp32, tensors[t].second});
      for (index_t i = 0; i < volume(tensors[t].second); ++i) {
        float v = static_cast<float>(1000 * t + static_cast<std::size_t>(i));
        data.append(reinterpret_cast<const char*>(&v), sizeof v);
      }
    }
    std::ofstream(folder / ("part" + std::to_string(first) + ".safetensors"), std::ios::binary) << safetensors_header_bytes(items) << data;
  }
  return folder;
}

}  // namespace

TEST_CASE("a DCP checkpoint written by torch 1.13: layout, chunk places, values, entries") {
  Checkpoint ck = Checkpoint::open(torch_checkpoint);
  const CheckpointLayout& layout = ck.layout();
  CHECK(layout.format == CheckpointFormat::dcp);
  REQUIRE(layout.tensors.size() == 2);
  const StoredTensor& w = layout.tensors[*layout.find("w")];
  CHECK(w.dtype == DType::fp32);
  CHECK(w.shape == Dims{5, 3});
  REQUIRE(w.chunks.size() == 2);
  CHECK(w.chunks[1].box == ChunkMeta{Dims{3, 0}, Dims{2, 3}});
  CHECK(layout.entries.size() == 2);
  std::vector<float> whole(15);
  std::size_t t = *layout.find("w");
  for (std::size_t c = 0; c < 2; ++c)
    ck.read_box(t, c, Dims{0, 0}, w.chunks[c].box.sizes, reinterpret_cast<std::byte*>(whole.data() + 3 * w.chunks[c].box.offsets[0]), Dims{3, 1});
  for (std::size_t i = 0; i < 15; ++i) CHECK(whole[i] == static_cast<float>(i));
  CheckpointVerification report = verify_checkpoint(ck);
  CHECK(report.problems.empty());
  CHECK(report.chunks == 3);
  CHECK(report.bytes == 15 * 4 + 4 * 2);
}

TEST_CASE("match_model: the torch 1.13 checkpoint against its model under recipes") {
  Checkpoint ck = Checkpoint::open(torch_checkpoint);
  ModelSpec model{"m", {ModelTensor{"w", Dims{5, 3}, TensorRole::replicated, DType::fp32}, ModelTensor{"b", Dims{4}, TensorRole::replicated, DType::bf16}}};
  ModelMatch fsdp = match_model(ck.layout(), model, "fsdp dp=2");  // w as saved; b was saved whole
  CHECK(fsdp.problems.empty());
  CHECK(fsdp.differing == 1);
  CHECK(fsdp.first_differing == "b");
  CHECK(match_model(ck.layout(), model, "replicated").differing == 1);  // now w differs and b matches
  ModelSpec other = model;
  other.tensors[1].dtype = DType::fp32;
  other.tensors.push_back(ModelTensor{"extra", Dims{2}, TensorRole::replicated, DType::fp32});
  ModelMatch wrong = match_model(ck.layout(), other, "fsdp dp=2");
  REQUIRE(wrong.problems.size() == 2);
  CHECK(wrong.problems[0] == "tensor 'b' is bf16 [4] in the checkpoint but fp32 [4] in model 'm'");
  CHECK(wrong.problems[1] == "model tensor 'extra' is not in the checkpoint");
  CHECK_FALSE(wrong.matches());
}

TEST_CASE("safetensors: header round trip and its errors") {
  std::string header = safetensors_header_bytes({{"a", DType::bf16, Dims{2, 3}}, {"b", DType::int64, Dims{}}});
  CHECK(header.size() % 8 == 0);
  std::string file = header + std::string(12 + 8, '\0');
  MemorySource source(std::as_bytes(std::span(file.data(), file.size())), "t.safetensors");
  SafetensorsHeader read = read_safetensors_header(source);
  REQUIRE(read.tensors.size() == 2);
  CHECK(read.tensors[0].name == "a");
  CHECK(read.tensors[0].byte_offset == header.size());
  CHECK(read.tensors[1].bytes == 8);
  std::string trailing = file + "x";
  MemorySource extra(std::as_bytes(std::span(trailing.data(), trailing.size())), "t.safetensors");
  CHECK_THROWS_WITH_AS(read_safetensors_header(extra), doctest::Contains("trailing bytes"), FormatError);
  std::string short_file = file.substr(0, file.size() - 1);
  MemorySource truncated(std::as_bytes(std::span(short_file.data(), short_file.size())), "t.safetensors");
  CHECK_THROWS_WITH_AS(read_safetensors_header(truncated), doctest::Contains("tensor 'b'"), FormatError);
}

TEST_CASE("read plans: every wanted element arrives once, each stored byte is read once, loads equal the stored values") {
  std::vector<std::pair<std::string, Dims>> tensors{{"embed", Dims{10, 4}}, {"norm", Dims{7}}, {"proj", Dims{5, 6}}};
  Checkpoint ck = Checkpoint::open(safetensors_folder("plans", tensors, 2));
  CHECK(verify_checkpoint(ck).ok());
  for (std::string recipe : {"fsdp dp=3", "replicated ranks=3", "fsdp-tp dp=2,tp=2", "zero3 dp=4"}) {
    CAPTURE(recipe);
    ModelLayout want = layout_model(checkpoint_model(ck.layout()), recipe);
    CheckpointReadPlanner planner(ck.layout(), want);
    std::uint64_t read = 0, wanted = 0;
    for (index_t rank : want.ranks()) {
      RankReadPlan plan = planner.plan(rank);
      for (std::size_t d = 0; d < want.size(); ++d) wanted += static_cast<std::uint64_t>(want[d].layout.held_elements(rank)) * 4;
      std::uint64_t arriving = 0;
      for (const CheckpointRead& r : plan.reads) arriving += static_cast<std::uint64_t>(volume(r.lengths)) * 4;
      read += arriving;
      for (const CheckpointForward& f : plan.receives) arriving += static_cast<std::uint64_t>(volume(f.lengths)) * 4;
      std::uint64_t held = 0;
      for (std::size_t d = 0; d < want.size(); ++d) held += static_cast<std::uint64_t>(want[d].layout.held_elements(rank)) * 4;
      CHECK(arriving == held);
      // Loading alone: the rank's buffers hold exactly the stored values of what it holds.
      RankReadPlan alone = planner.plan(rank, false);
      std::vector<std::uint64_t> sizes = rank_buffer_bytes(planner, rank);
      std::vector<std::vector<std::byte>> storage;
      std::vector<std::span<std::byte>> buffers;
      for (std::uint64_t s : sizes) storage.emplace_back(s, std::byte{0xff});
      for (auto& s : storage) buffers.emplace_back(s);
      load_reads(ck, planner, alone, buffers, LoadOptions{2, 1 << 20});
      for (std::size_t d = 0; d < want.size(); ++d) {
        std::size_t t = planner.checkpoint_tensor(d);
        auto address = want[d].layout.addressing(rank);
        for (const Piece& piece : want[d].layout.pieces(rank)) {
          const float* buffer = reinterpret_cast<const float*>(storage[want.buffer_of(d)].data());
          Dims strides = row_major_strides(want[d].layout.global_shape());
          for (index_t i = 0; i < piece.global.volume(); ++i) {
            Dims at = piece.global.offset, delta = Dims(at.size(), 0);
            for (std::size_t k = at.size(), rest = static_cast<std::size_t>(i); k-- > 0;) {
              delta[k] = static_cast<index_t>(rest % static_cast<std::size_t>(piece.global.shape[k]));
              rest /= static_cast<std::size_t>(piece.global.shape[k]);
              at[k] += delta[k];
            }
            float expected = static_cast<float>(1000 * t + static_cast<std::size_t>(dot(at, strides)));
            REQUIRE(buffer[address.base(piece.local) + dot(delta, address.strides)] == expected);
          }
        }
      }
    }
    std::uint64_t stored = ck.layout().tensor_bytes();
    CHECK(read == stored);
    CHECK(wanted >= stored);
  }
}

TEST_CASE("forward_messages: a job reading each byte once, then forwarding, fills every rank as loading alone does (tiles and flat buffers)") {
  std::vector<std::pair<std::string, Dims>> tensors{{"embed", Dims{10, 4}}, {"norm", Dims{7}}, {"proj", Dims{5, 6}}};
  Checkpoint ck = Checkpoint::open(safetensors_folder("forwards", tensors, 2));
  for (std::string recipe : {"replicated ranks=3", "fsdp-tp dp=2,tp=2", "zero3 dp=4", "zero3 dp=2,tp=2", "megatron-distopt dp=2,tp=2"}) {
    CAPTURE(recipe);
    ModelLayout want = layout_model(checkpoint_model(ck.layout()), recipe);
    CheckpointReadPlanner planner(ck.layout(), want);
    std::map<index_t, std::vector<std::vector<std::byte>>> shared, alone;
    std::map<index_t, ForwardMessages> messages;
    std::uint64_t forwarded = 0;
    auto buffers_of = [&](std::vector<std::vector<std::byte>>& storage, index_t rank) {
      for (std::uint64_t bytes : rank_buffer_bytes(planner, rank)) storage.emplace_back(bytes, std::byte{0xee});
      return std::vector<std::span<std::byte>>(storage.begin(), storage.end());
    };
    for (index_t rank : want.ranks()) {
      RankReadPlan plan = planner.plan(rank);
      load_reads(ck, planner, plan, buffers_of(shared[rank], rank));
      load_reads(ck, planner, planner.plan(rank, false), buffers_of(alone[rank], rank));
      messages[rank] = forward_messages(planner, plan);
      for (const CheckpointForward& f : plan.sends) forwarded += static_cast<std::uint64_t>(volume(f.lengths)) * 4;
    }
    // Every send has its receive, of the same stream length; its bytes land in the receiver's buffers.
    std::uint64_t streamed = 0;
    for (auto& [sender, ms] : messages)
      for (const Message& send : ms.sends) {
        const auto& theirs = messages[send.peer].receives;
        auto receive = std::find_if(theirs.begin(), theirs.end(), [&, from = sender](const Message& m) { return m.peer == from; });
        REQUIRE(receive != theirs.end());
        REQUIRE(receive->bytes == send.bytes);
        std::vector<std::byte> stream(static_cast<std::size_t>(send.bytes));
        send.for_each_run(0, send.bytes, [&, from = sender](const BoxRows& box, index_t at, index_t offset, index_t length) {
          std::memcpy(stream.data() + offset, shared[from][box.buffer].data() + at, static_cast<std::size_t>(length));
          streamed += static_cast<std::uint64_t>(length);
        });
        receive->for_each_run(0, receive->bytes, [&, to = send.peer](const BoxRows& box, index_t at, index_t offset, index_t length) {
          std::memcpy(shared[to][box.buffer].data() + at, stream.data() + offset, static_cast<std::size_t>(length));
        });
      }
    CHECK(streamed == forwarded);
    CHECK((recipe == "zero3 dp=4") == (forwarded == 0));
    for (index_t rank : want.ranks()) CHECK(shared[rank] == alone[rank]);
  }
}

TEST_CASE("read plans refuse a destination the checkpoint cannot fill, naming the tensor") {
  Checkpoint ck = Checkpoint::open(safetensors_folder("refuse", {{"w", Dims{4, 4}}}, 1));
  ModelSpec other{"other", {ModelTensor{"w", Dims{4, 5}, TensorRole::replicated, DType::fp32}}};
  ModelLayout want = layout_model(other, "fsdp dp=2");
  CHECK_THROWS_WITH(CheckpointReadPlanner(ck.layout(), want), doctest::Contains("tensor 'w' is fp32 [4, 4] in the checkpoint but fp32 [4, 5]"));
  std::vector<std::byte> small(8);
  ModelLayout fine = layout_model(checkpoint_model(ck.layout()), "fsdp dp=2");
  CheckpointReadPlanner planner(ck.layout(), fine);
  std::vector<std::span<std::byte>> buffers{std::span(small)};
  CHECK_THROWS_WITH(load_reads(ck, planner, planner.plan(0, false), buffers), doctest::Contains("buffer 0 has 8 bytes; it needs 32"));
}

TEST_CASE("uncovered_regions and overlapping_chunks: holes named on the chunk grid, replicas paired") {
  auto chunk = [](Dims offsets, Dims sizes) { return StoredChunk{ChunkMeta{std::move(offsets), std::move(sizes)}, 0, 0, 0}; };
  StoredTensor w{"w", DType::fp32, Dims{6, 2}, {chunk({0, 0}, {2, 2}), chunk({4, 0}, {2, 2})}};
  std::vector<std::size_t> both{0, 1};
  std::vector<Box> holes = uncovered_regions(w, both);
  REQUIRE(holes.size() == 1);
  CHECK(holes[0] == Box{Dims{2, 0}, Dims{2, 2}});
  // A grid too fine to build: volumes decide, and the hole is reported as the whole tensor.
  CHECK(uncovered_regions(w, both, 1) == std::vector<Box>{Box{Dims{0, 0}, Dims{6, 2}}});
  w.chunks.push_back(chunk({1, 0}, {4, 2}));  // fills the hole, overlapping both
  std::vector<std::size_t> all{0, 1, 2};
  CHECK(uncovered_regions(w, all).empty());
  CHECK(uncovered_regions(w, all, 1).empty());  // 12 elements stored in 16: nothing found missing
  CHECK(overlapping_chunks(w, all) == std::vector<std::pair<std::size_t, std::size_t>>{{0, 2}, {1, 2}});
  CHECK(chunk_inside(w, ChunkMeta{Dims{5, 0}, Dims{1, 2}}));
  CHECK_FALSE(chunk_inside(w, ChunkMeta{Dims{5, 0}, Dims{2, 2}}));
  CHECK_FALSE(chunk_inside(w, ChunkMeta{Dims{1, 0}, Dims{std::numeric_limits<index_t>::max(), 2}}));  // no overflow
  CHECK_FALSE(chunk_inside(w, ChunkMeta{Dims{0}, Dims{6}}));
  CHECK(chunks_in_bounds(w) == all);
}
