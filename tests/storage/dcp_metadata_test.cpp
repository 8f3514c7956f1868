#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../test_support.hpp"

using namespace shardalg;
using detail::DcpOnePassReader;

namespace {

const std::filesystem::path data_folder = std::filesystem::path(__FILE__).parent_path() / "data";
const std::filesystem::path torch_metadata = data_folder / "dcp_torch113" / ".metadata";
// The same checkpoint as torch 2.x pickles its metadata (data/README.md).
const std::filesystem::path torch2_metadata = data_folder / "dcp_torch2_emulated.metadata";

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Pickle pieces (protocol 2 opcodes) for DCP records written by hand.
std::string text(std::string_view s) { return "\x8c" + std::string(1, static_cast<char>(s.size())) + std::string(s); }
std::string global(std::string_view module, std::string_view name) { return "c" + std::string(module) + "\n" + std::string(name) + "\n"; }
std::string new_record(std::string_view name) { return global(detail::dcp_v1, name) + ")\x81"; }
std::string size(int extent) { return global("torch", "Size") + "(K" + std::string(1, static_cast<char>(extent)) + "t\x85R"; }
std::string chunk(int offset, int extent) {
  return new_record("ChunkStorageMetadata") + "}(" + text("offsets") + size(offset) + text("sizes") + size(extent) + "ub";
}
// Tensor "w", fp32 [4], one chunk [0, 2) in a list stored at memo 0, then `after` (run with the
// tensor on top of the stack), in a Metadata without storage_data; `after_root` runs with the
// unbuilt Metadata on top.
std::string metadata_pickle(const std::string& after = "", const std::string& after_root = "") {
  const std::string st = std::string(detail::sharded_tensor_metadata);
  std::string properties = global(st, "TensorProperties") + ")\x81(" + global("torch", "float32") + global("torch.serialization", "_get_layout") +
                           text("torch.strided") + "\x85R\x89" + global("builtins", "getattr") + global(st, "MEM_FORMAT_ENCODING") +
                           text("TORCH_CONTIGUOUS_FORMAT") + "\x86R\x89tb";
  std::string tensor = new_record("TensorStorageMetadata") + "}(" + text("properties") + properties + text("size") + size(4) + text("chunks") +
                       "]q" + std::string(1, '\0') + "(" + chunk(0, 2) + "eub";
  return "\x80\x02" + new_record("Metadata") + after_root + "}(" + text("state_dict_metadata") + "}(" + text("w") + tensor + after + "u" +
         text("storage_data") + "Nub.";
}

// A layout of `tensors` tensors of 3,000 row chunks each over `files` files, and an entry.
CheckpointLayout many_chunks(int tensors = 3, int files = 64) {
  CheckpointLayout layout;
  for (int f = 0; f < files; ++f) layout.files.push_back("__" + std::to_string(f) + "_0.distcp");
  for (int t = 0; t < tensors; ++t) {
    StoredTensor tensor{"model.layers." + std::to_string(t) + ".mlp.weight", DType::bf16, Dims{6000, 3 + t % 5}, {}};
    for (index_t c = 0; c < 3000; ++c)
      tensor.chunks.push_back(StoredChunk{ChunkMeta{Dims{2 * c, 0}, Dims{2, 3 + t % 5}}, static_cast<std::uint32_t>(c % files),
                                          static_cast<std::uint64_t>(1000 * c + t), static_cast<std::uint64_t>(700 + c)});
    layout.tensors.push_back(std::move(tensor));
  }
  layout.entries.push_back(StoredEntry{"step", 5, 123, 45});
  return layout;
}

}  // namespace

TEST_CASE("read_dcp_metadata: thousands of chunks (storage items read on a second thread by the document reader, placed by the one-pass reader's worker, on a thread of its own or not) read back whole, and errors found there are reported") {
  CheckpointLayout layout = many_chunks();
  for (DcpFlavor flavor : {DcpFlavor::torch_1_13, DcpFlavor::torch_2}) {
    layout.dcp_flavor = flavor;
    std::string bytes = dcp_metadata_bytes(layout, flavor);
    CHECK(read_dcp_metadata(bytes, "many chunks") == layout);
    CHECK(detail::read_dcp_metadata_document(bytes, "many chunks") == layout);
    CHECK(DcpOnePassReader::read(bytes, "many chunks", 0) == layout);
  }
  // The last storage item names a tensor the metadata does not list: the one-pass reader's worker
  // finds it and the reader gives up; the document reader states it.
  std::string bytes = dcp_metadata_bytes(layout, DcpFlavor::torch_2);
  bytes.replace(bytes.rfind("model.layers.2.mlp.weight"), 25, "model.layers.9.mlp.weight");
  CHECK_FALSE(DcpOnePassReader::read(bytes, "many chunks"));
  CHECK_FALSE(DcpOnePassReader::read(bytes, "many chunks", 0));
  CHECK_THROWS_WITH_AS(read_dcp_metadata(bytes, "many chunks"), doctest::Contains("storage info for 'model.layers.9.mlp.weight', which the metadata does not list"),
                       FormatError);
  layout.files[17] = "../elsewhere.distcp";  // refused while reading storage_data, on its thread
  CHECK_THROWS_WITH_AS(read_dcp_metadata(dcp_metadata_bytes(layout, DcpFlavor::torch_2), "many chunks"),
                       doctest::Contains("is stored in '../elsewhere.distcp', not a file name inside the checkpoint folder"), FormatError);
}

TEST_CASE("DCP metadata as torch and shardalg write it is read in one pass, as the document reader reads it") {
  std::string torch_bytes = file_bytes(torch_metadata);
  std::optional<CheckpointLayout> one = DcpOnePassReader::read(torch_bytes, "torch 1.13");
  REQUIRE(one);
  CHECK(*one == detail::read_dcp_metadata_document(torch_bytes, "torch 1.13"));
  CHECK(one->tensors.size() == 2);
  CHECK(one->entries.size() == 2);
  CheckpointLayout layout = many_chunks();
  for (DcpFlavor flavor : {DcpFlavor::torch_1_13, DcpFlavor::torch_2}) {
    layout.dcp_flavor = flavor;
    std::string bytes = dcp_metadata_bytes(layout, flavor);
    one = DcpOnePassReader::read(bytes, "written");
    REQUIRE(one);
    CHECK(*one == detail::read_dcp_metadata_document(bytes, "written"));
    CHECK(*one == layout);
  }
  std::string torch2_bytes = file_bytes(torch2_metadata);
  one = DcpOnePassReader::read(torch2_bytes, "torch 2.x");
  REQUIRE(one);
  CHECK(one->dcp_flavor == DcpFlavor::torch_2);
  CHECK(*one == detail::read_dcp_metadata_document(torch2_bytes, "torch 2.x"));
  CheckpointLayout as_torch113 = *DcpOnePassReader::read(torch_bytes, "torch 1.13");
  as_torch113.dcp_flavor = DcpFlavor::torch_2;
  CHECK(*one == as_torch113);  // StorageMeta and version change nothing
  std::string plain = metadata_pickle();
  one = DcpOnePassReader::read(plain, "by hand");
  REQUIRE(one);
  CHECK(one->tensors[0].chunks.size() == 1);
}

TEST_CASE("a metadata file past 16 MiB is read in one pass with its chunk vectors made and storage items placed on another thread") {
  CheckpointLayout layout = many_chunks(40, 256);  // 120,000 chunks, about 18 MB of pickle
  std::string bytes = dcp_metadata_bytes(layout, DcpFlavor::torch_2);
  REQUIRE(bytes.size() >= std::size_t{16} << 20);
  std::optional<CheckpointLayout> one = DcpOnePassReader::read(bytes, "large");
  REQUIRE(one);
  CHECK(*one == layout);
  bytes.resize(bytes.size() - 100);  // given up with the other thread at work: it stops, and the error is the document reader's
  CHECK_FALSE(DcpOnePassReader::read(bytes, "large"));
  CHECK_THROWS_WITH_AS(read_dcp_metadata(bytes, "large"), doctest::Contains("truncated pickle"), FormatError);
}

TEST_CASE("the one-pass reader gives up on a record changed after its BUILD, and on what torch does not write; read_dcp_metadata then answers as the document reader") {
  // The chunk list fetched from the memo and appended to after the tensor is built: torch 1.13's
  // pickle.loads gives the tensor both chunks (checked), and so does read_dcp_metadata.
  std::string changed = metadata_pickle("h" + std::string(1, '\0') + chunk(2, 2) + "a0");
  CHECK_FALSE(DcpOnePassReader::read(changed, "changed"));
  CheckpointLayout layout = read_dcp_metadata(changed, "changed");
  REQUIRE(layout.tensors.size() == 1);
  REQUIRE(layout.tensors[0].chunks.size() == 2);
  CHECK(layout.tensors[0].chunks[1].box.offsets == Dims{2});
  // DUP and POP: valid, never written by torch here.
  std::string duplicated = metadata_pickle("", "20");
  CHECK_FALSE(DcpOnePassReader::read(duplicated, "dup"));
  CHECK(read_dcp_metadata(duplicated, "dup") == *DcpOnePassReader::read(metadata_pickle(), "plain"));
  // Errors are the document reader's, named.
  std::string evil = metadata_pickle("", global("os", "system") + "0");
  CHECK_FALSE(DcpOnePassReader::read(evil, "evil"));
  CHECK_THROWS_WITH_AS(read_dcp_metadata(evil, "evil"), doctest::Contains("refused pickle class 'os.system'"), FormatError);
  CheckpointLayout outside = many_chunks();
  outside.files[17] = "../elsewhere.distcp";  // an error: the document reader states it (above)
  CHECK_FALSE(DcpOnePassReader::read(dcp_metadata_bytes(outside, DcpFlavor::torch_2), "outside"));
}

TEST_CASE("the one-pass reader gives its worker storage items as they come, and gives up where they turn out not to be storage_data's") {
  std::string index = new_record("MetadataIndex") + "}(" + text("fqn") + text("w") + text("offset") + size(0) + text("index") + "K" + std::string(1, '\0') + "ub";
  std::string info = global("torch.distributed._shard.checkpoint.filesystem", "_StorageInfo") + ")\x81}(" + text("relative_path") + text("__0_0.distcp") +
                     text("offset") + "K" + std::string(1, '\0') + text("length") + "K\x08ub";
  std::string items = "}(" + index + info + "u";
  std::string plain = metadata_pickle();
  std::string stored = plain;
  stored.replace(stored.rfind(text("storage_data") + "N"), text("storage_data").size() + 1, text("storage_data") + items);
  std::string elsewhere = plain;  // the same items in planner_data, none in storage_data
  elsewhere.replace(elsewhere.rfind(text("storage_data") + "N"), text("storage_data").size() + 1, text("planner_data") + items + text("storage_data") + "N");
  for (std::size_t worker_from : {std::size_t{0}, DcpOnePassReader::worker_from_bytes}) {
    CAPTURE(worker_from);
    std::optional<CheckpointLayout> one = DcpOnePassReader::read(stored, "stored", worker_from);
    REQUIRE(one);
    CHECK(*one == detail::read_dcp_metadata_document(stored, "stored"));
    REQUIRE(one->files == std::vector<std::string>{"__0_0.distcp"});
    CHECK(one->tensors[0].chunks[0].item_bytes == 8);
    CHECK_FALSE(DcpOnePassReader::read(elsewhere, "elsewhere", worker_from));
  }
  CheckpointLayout unplaced = read_dcp_metadata(elsewhere, "elsewhere");  // the document reader's answer: planner_data is not read
  CHECK(unplaced.files.empty());
  CHECK(unplaced.tensors[0].chunks[0].file == no_file);
}

TEST_CASE("SerialWorker: tasks run in order, fewer than wake_after of them by finish(), each after the upkeep; a failure drops the rest") {
  std::string log;  // written on the worker's thread only, read after finish()
  std::atomic<int> ran = 0;
  {
    detail::SerialWorker worker;
    worker.start([&] {
      log += 'u';
      return false;
    });
    auto task = [&](int t) {
      return [&, t] {
        log += static_cast<char>('0' + t);
        ++ran;
      };
    };
    static_assert(detail::SerialWorker::wake_after == 8);
    for (int t = 0; t < 8; ++t) worker.add(task(t));  // the eighth wakes the thread
    while (ran < 8) std::this_thread::yield();
    for (int t = 8; t < 10; ++t) worker.add(task(t));  // run by finish() at the latest
    worker.finish();
    std::string order;
    for (char c : log)
      if (c != 'u') order += c;
    CHECK(order == "0123456789");
    for (char t = '0'; t < '8'; ++t) {
      std::size_t at = log.find(t);
      CHECK((at != std::string::npos && at > 0 && log[at - 1] == 'u'));
    }
  }
  std::vector<int> done;
  detail::SerialWorker failing;
  failing.start();
  for (int t = 0; t < 20; ++t)
    failing.add([&done, t] {
      if (t == 11) throw FormatError("task 11 failed");
      done.push_back(t);
    });
  CHECK_THROWS_WITH_AS(failing.finish(), "task 11 failed", FormatError);
  CHECK(done.size() == 11);
  // Without a thread, each task runs as it is added.
  detail::SerialWorker inline_worker;
  inline_worker.add([&done] { done.push_back(99); });
  CHECK(done.back() == 99);
}

TEST_CASE("law: for every truncation and one-byte change of a torch-written file, the one-pass reader answers only what the document reader answers, and the same with its worker on a thread or its records read opcode by opcode") {
  for (const std::filesystem::path& path : {torch_metadata, torch2_metadata}) {
    CAPTURE(path);
    const std::string original = file_bytes(path);
    std::size_t answered = 0, given_up = 0, disagreements = 0;
    auto check = [&](const std::string& bytes) {
      std::optional<CheckpointLayout> one = DcpOnePassReader::read(bytes, "changed");
      std::optional<CheckpointLayout> threaded = DcpOnePassReader::read(bytes, "changed", 0);  // the same, with a worker thread
      disagreements += one.has_value() != threaded.has_value() || (one && !(*one == *threaded));
      // and the same with every opcode run one by one rather than records read in one go
      std::optional<CheckpointLayout> opcodes = DcpOnePassReader::read(bytes, "changed", DcpOnePassReader::worker_from_bytes, false);
      disagreements += one.has_value() != opcodes.has_value() || (one && !(*one == *opcodes));
      if (!one) {
        ++given_up;
        return;
      }
      ++answered;
      try {
        disagreements += !(*one == detail::read_dcp_metadata_document(bytes, "changed"));
      } catch (const Error&) {
        ++disagreements;  // an answer where the document reader states an error
      }
    };
    for (std::size_t n = 0; n < original.size(); ++n) check(original.substr(0, n));
    for (std::size_t i = 0; i < original.size(); ++i)
      for (unsigned char replacement : {0x00, 0x01, 0x30, 0x7f, 0xff}) {
        std::string bytes = original;
        bytes[i] = static_cast<char>(static_cast<unsigned char>(bytes[i]) ^ replacement ^ 0x55);
        check(bytes);
      }
    CHECK(disagreements == 0);
    CHECK(answered > 100);  // changed integers and names still read in one pass
    CHECK(given_up > 100);
  }
}
