// DCP's `.metadata` read in one pass: the pickle's opcodes run on a stack of typed values, each
// record decoded as its BUILD completes it, and what the records no longer need dropped there.
//
// Why: the document reader (pickle_reader.hpp, then dcp_metadata.hpp's decoder) keeps every value
// of the file and reads them again to decode them: for Llama-3-405B at 1,024 ranks 19 million
// nodes, over 500 MB. This reader keeps per chunk its torch.Size extents, its storage item and
// the memo's 4-byte entries: about 230 MB there, besides the layout it returns.
//
// It reads what torch writes (pickle.dump of a Metadata, protocols 2 to 5) and gives up, answering
// none, on anything outside that form: an opcode or class torch does not write there, a value read
// back from the memo that may have changed since it was stored (a container, an unfinished object),
// anything the document reader would refuse. read_dcp_metadata then reads the file with the
// document reader, which states the error. So this reader never decides an error, and where it
// answers, it gives the document reader's answer (the dcp_metadata fuzz target checks that on
// every input). Like that reader, it calls nothing the file names.
//
// Why dropping is safe: a container or unfinished object can only be reached twice through the
// memo (given up) or DUP (given up), so everything made after an object's NEWOBJ and still held
// at its BUILD belongs to the state that BUILD consumes.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shardalg/storage/checkpoint_layout.hpp"
#include "shardalg/storage/dcp_records.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/pickle_reader.hpp"

namespace shardalg::detail {

// A tensor's chunk boxes, packed: per chunk its offsets, then its sizes, each as a count then the
// values.
struct PackedChunkBoxes {
  std::size_t tensor, count;
  std::vector<std::int64_t> extents;
};

// Makes tensors' chunk vectors from packed boxes, on a thread of its own where started: the
// vectors are most of a large layout's memory (1.16 million chunks, 250 MB, for 405B at 1,024
// ranks), and first writing them is then done beside the pass.
class ChunkBoxMaker {
 public:
  ChunkBoxMaker() = default;
  ChunkBoxMaker(const ChunkBoxMaker&) = delete;
  ChunkBoxMaker& operator=(const ChunkBoxMaker&) = delete;
  ~ChunkBoxMaker() { stop(); }

  // Without a thread to spare, boxes are made as they are added.
  void start() {
    try {
      thread_ = std::thread([this] { work(); });
    } catch (const std::system_error&) {
    }
  }
  void add(PackedChunkBoxes boxes) {
    if (!thread_.joinable()) return make(boxes);
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(boxes));
    }
    ready_.notify_one();
  }
  // Every tensor's chunk vector, by tensor index, once all added are made.
  std::vector<std::vector<StoredChunk>> finish() {
    stop();
    if (error_) std::rethrow_exception(error_);
    return std::move(chunks_);
  }

 private:
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  void work() {
    try {
      std::deque<PackedChunkBoxes> batch;
      while (true) {
        {
          std::unique_lock lock(mutex_);
          ready_.wait(lock, [&] { return done_ || !queue_.empty(); });
          if (queue_.empty()) return;
          batch.swap(queue_);
        }
        for (const PackedChunkBoxes& boxes : batch) make(boxes);
        batch.clear();
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void make(const PackedChunkBoxes& boxes) {
    if (chunks_.size() <= boxes.tensor) chunks_.resize(boxes.tensor + 1);
    std::vector<StoredChunk>& out = chunks_[boxes.tensor];
    out.resize(boxes.count);
    const std::int64_t* next = boxes.extents.data();
    for (StoredChunk& c : out)
      for (Dims* dims : {&c.box.offsets, &c.box.sizes})
        for (std::int64_t n = *next++; n > 0; --n) dims->push_back(*next++);
  }

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<PackedChunkBoxes> queue_;
  bool done_ = false;
  std::exception_ptr error_;
  std::vector<std::vector<StoredChunk>> chunks_;
};

class DcpOnePassReader {
 public:
  // The layout `data` records, or none where this reader gives up (see above).
  static std::optional<CheckpointLayout> read(std::string_view data, const std::string& what) {
    DcpOnePassReader reader(data, what);
    try {
      return reader.run();
    } catch (const GiveUp&) {
      return std::nullopt;
    } catch (const PickleTruncated&) {
      return std::nullopt;
    } catch (const FormatError&) {  // from a shared rule: the document reader states it
      return std::nullopt;
    }
  }

 private:
  struct GiveUp {};
  // Inputs from this size on are helped by another thread (below).
  static constexpr std::size_t concurrent_from_bytes = std::size_t{16} << 20;
  [[noreturn]] static void give_up() { throw GiveUp{}; }

  // What each allowed class makes.
  enum class Record : std::uint8_t { metadata, tensor_storage, chunk_storage, bytes_storage, metadata_index, tensor_properties, storage_info, storage_meta, size, inert, dtype, other };
  static Record record_of(const PickleGlobal& g) {
    constexpr std::pair<std::string_view, Record> records[] = {
        {"Metadata", Record::metadata}, {"TensorStorageMetadata", Record::tensor_storage}, {"ChunkStorageMetadata", Record::chunk_storage},
        {"BytesStorageMetadata", Record::bytes_storage}, {"MetadataIndex", Record::metadata_index}, {"TensorProperties", Record::tensor_properties},
        {"_StorageInfo", Record::storage_info}, {"StorageMeta", Record::storage_meta}, {"OrderedDict", Record::other}};
    for (auto [name, record] : records)
      if (g.name == name) return record;
    if (g.module == "torch") return g.name == "Size" ? Record::size : Record::dtype;
    return Record::inert;  // layouts, memory formats, paths: values no decoder reads
  }

  // The fields decoders read, recognised once per string.
  enum Field : std::int8_t { no_field = -1, f_offsets, f_sizes, f_properties, f_size, f_chunks, f_fqn, f_offset, f_index, f_relative_path, f_length,
                             f_transform_descriptors, f_dtype, f_state_dict_metadata, f_storage_data, field_count };
  static Field field_of(std::string_view text) {
    constexpr std::string_view names[field_count] = {"offsets", "sizes", "properties", "size", "chunks", "fqn", "offset", "index",
                                                     "relative_path", "length", "transform_descriptors", "dtype", "state_dict_metadata", "storage_data"};
    for (int f = 0; f < field_count; ++f)
      if (text.size() == names[f].size() && text == names[f]) return static_cast<Field>(f);
    return no_field;
  }

  // A value: a tag and 28 bits of payload, an index into the table of its kind.
  using Value = std::uint32_t;
  enum Tag : std::uint32_t { small_int, big_int, special, text, global, composite, dims, pending, chunk, props, tensor, bytes_entry, metadata_index, storage_info, inert, metadata };
  static constexpr Value payload_mask = (Value{1} << 28) - 1;
  static constexpr Value none_value = special << 28, false_value = none_value | 1, true_value = none_value | 2, empty_tuple = none_value | 3;
  static Value make(Tag t, std::size_t payload) {
    if (payload > payload_mask) give_up();
    return static_cast<Value>(t) << 28 | static_cast<Value>(payload);
  }
  static Tag tag(Value v) { return static_cast<Tag>(v >> 28); }
  static std::uint32_t payload(Value v) { return v & payload_mask; }

  enum class Kind : std::uint8_t { tuple, list, dict };
  struct Composite {  // items arena_[start, start + count): a dict's keys and values alternate
    std::uint32_t start, count;
    Kind kind;
  };
  struct Text {
    std::uint64_t offset;
    std::uint32_t length;
    Field field;
  };
  struct Extents {  // dim_values_[start, start + count)
    std::uint32_t start, count;
  };
  struct Pending {  // an object made by NEWOBJ, not built yet; the tables' sizes then
    std::uint8_t global;
    std::uint32_t arena, composites;
  };
  struct Chunk {
    std::uint32_t offsets, sizes;  // Extents
  };
  struct Index {
    std::uint32_t fqn;      // Text
    std::uint32_t offsets;  // Extents, or no_extents (zeros)
    std::int64_t hint;      // -1 where none (a negative hint names no chunk)
  };
  static constexpr std::uint32_t no_extents = 0xffffffffu;
  static constexpr std::uint32_t no_tensor = 0xffffffffu;  // an item of an entry
  // Storage items are matched to chunks on two threads from this many on.
  static constexpr std::size_t items_for_two_threads = 4096;
  struct Info {
    std::uint32_t path;  // Text
    std::uint64_t offset, length;
  };

  DcpOnePassReader(std::string_view data, const std::string& what) : data_(data), what_(what), input_(data) {
    for (const PickleGlobal& g : dcp_metadata_globals) records_.push_back(record_of(g));
    // Capacity for what a DCP file of this size fills, not written until used (per input byte
    // about 0.1 memo entries, 0.02 extents of 0.04 values, 0.006 chunks, storage items and names):
    // an array that outgrows it is copied.
    memo_.reserve(data.size() / 8 + 16);
    arena_.reserve(data.size() / 64 + 16);
    texts_.reserve(data.size() / 128 + 16);
    extents_.reserve(data.size() / 32 + 16);
    extent_values_.reserve(data.size() / 16 + 16);
    chunks_.reserve(data.size() / 128 + 16);
    indices_.reserve(data.size() / 128 + 16);
    infos_.reserve(data.size() / 128 + 16);
    // A large input has its chunk vectors made on another thread. (Mapping this reader's arrays
    // ahead of it there as well, as the document reader does, made it slower: the two threads
    // then share the second core.)
    if (data.size() >= concurrent_from_bytes) box_maker_.start();
  }

  CheckpointLayout run() {
    while (true) {
      std::uint8_t op = input_.le<std::uint8_t>();
      switch (op) {
        case 0x80: input_.need(1); break;  // PROTO
        case 0x95: input_.need(8); break;  // FRAME
        case '(': marks_.push_back(stack_.size()); break;
        case '.': {  // STOP
          if (stack_.size() != 1 || !marks_.empty() || tag(stack_[0]) != metadata) give_up();
          return std::move(layouts_[payload(stack_[0])]);
        }
        case 'N': stack_.push_back(none_value); break;
        case 0x88: stack_.push_back(true_value); break;
        case 0x89: stack_.push_back(false_value); break;
        case ')':  // EMPTY_TUPLE, nearly always the arguments of a NEWOBJ next
          if (input_.take('\x81'))
            new_object(empty_tuple);
          else
            stack_.push_back(empty_tuple);
          break;
        case 'J': stack_.push_back(integer(input_.le<std::int32_t>())); break;
        case 'K': stack_.push_back(integer(input_.le<std::uint8_t>())); break;
        case 'M': stack_.push_back(integer(input_.le<std::uint16_t>())); break;
        case 0x8a: stack_.push_back(long1()); break;
        case 0x8c: push_new(string(input_.le<std::uint8_t>())); break;
        case 'X': push_new(string(input_.le<std::uint32_t>())); break;
        case 0x8d: push_new(string(input_.le<std::uint64_t>())); break;
        case ']': push_new(new_composite(Kind::list)); break;
        case '}': push_new(new_composite(Kind::dict)); break;
        case 't': push_new(tuple_from(pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::size_t n = op - 0x84u;
          if (stack_.size() < floor() + n) give_up();
          push_new(tuple_from(stack_.size() - n));
          if (input_.take('R')) reduce();  // torch.Size's arguments
          break;
        }
        case 'a': {  // APPEND
          Value v = pop();
          Value list = top();
          stack_.push_back(v);
          extend(list, Kind::list, stack_.size() - 1);
          break;
        }
        case 'e': {  // APPENDS
          std::size_t m = pop_mark();
          if (m == 0) give_up();
          extend(stack_[m - 1], Kind::list, m);
          break;
        }
        case 's': {  // SETITEM
          Value v = pop(), k = pop();
          Value dict = top();
          stack_.push_back(k);
          stack_.push_back(v);
          extend(dict, Kind::dict, stack_.size() - 2);
          break;
        }
        case 'u': {  // SETITEMS
          std::size_t m = pop_mark();
          if (m == 0 || (stack_.size() - m) % 2) give_up();
          extend(stack_[m - 1], Kind::dict, m);
          if (input_.take('b')) build();  // a record's state, complete
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string_view module = input_.line(), name = input_.line();
          push_new(find_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Value name = pop(), module = pop();
          if (tag(name) != text || tag(module) != text) give_up();
          push_new(find_global(text_of(module), text_of(name)));
          break;
        }
        case 'R': reduce(); break;
        case 0x81: new_object(pop()); break;
        case 'b': build(); break;
        case 'q': put(input_.le<std::uint8_t>()); break;   // BINPUT
        case 'r': put(input_.le<std::uint32_t>()); break;  // LONG_BINPUT
        case 0x94: put(memo_.size()); break;        // MEMOIZE
        case 'h': get(input_.le<std::uint8_t>()); break;   // BINGET
        case 'j': get(input_.le<std::uint32_t>()); break;  // LONG_BINGET
        default: give_up();
      }
    }
  }

  // --- values ---
  Value integer(std::int64_t v) {
    if (v >= 0 && v <= std::int64_t{payload_mask}) return make(small_int, static_cast<std::size_t>(v));
    big_ints_.push_back(v);
    return make(big_int, big_ints_.size() - 1);
  }
  Value long1() {  // n <= 8 bytes
    std::size_t n = input_.le<std::uint8_t>();
    if (n > 8) give_up();
    return integer(input_.signed_le(n));
  }
  static bool is_integer(Value v) { return tag(v) == small_int || tag(v) == big_int; }
  std::int64_t integer_of(Value v) const { return tag(v) == small_int ? std::int64_t{payload(v)} : big_ints_[payload(v)]; }
  Value string(std::uint64_t length) {
    if (length > 0xffffffffu) give_up();
    std::size_t at = input_.need(static_cast<std::size_t>(length));
    std::string_view s = data_.substr(at, static_cast<std::size_t>(length));
    texts_.push_back(Text{at, static_cast<std::uint32_t>(length), field_of(s)});
    return make(text, texts_.size() - 1);
  }
  std::string_view text_of(Value v) const { return text_at(payload(v)); }
  std::string_view text_at(std::uint32_t t) const { return data_.substr(static_cast<std::size_t>(texts_[t].offset), texts_[t].length); }
  Value find_global(std::string_view module, std::string_view name) const {
    for (std::size_t g = 0; g < std::size(dcp_metadata_globals); ++g)
      if (dcp_metadata_globals[g].module == module && dcp_metadata_globals[g].name == name) return make(global, g);
    give_up();  // the document reader refuses it by name
  }

  Value new_composite(Kind kind) {
    composites_.push_back(Composite{static_cast<std::uint32_t>(arena_.size()), 0, kind});
    return make(composite, composites_.size() - 1);
  }
  bool is_tuple(Value v) const { return v == empty_tuple || (tag(v) == composite && composites_[payload(v)].kind == Kind::tuple); }
  std::span<const Value> items(Value v) const {
    if (v == empty_tuple) return {};
    const Composite& c = composites_[payload(v)];
    return {arena_.begin() + c.start, c.count};
  }
  // A tuple of stack items [from, end), which leave the stack.
  Value tuple_from(std::size_t from) {
    if (from == stack_.size()) return empty_tuple;
    Value t = new_composite(Kind::tuple);
    extend(t, Kind::tuple, from);
    return t;
  }
  // Moves stack items [from, end) into a container, after the items it has: these must end the
  // arena (a container is filled before anything made after it is kept).
  void extend(Value container, Kind kind, std::size_t from) {
    if (tag(container) != composite || composites_[payload(container)].kind != kind) give_up();
    Composite& c = composites_[payload(container)];
    if (c.count == 0)
      c.start = static_cast<std::uint32_t>(arena_.size());
    else if (c.start + c.count != arena_.size())
      give_up();
    std::size_t n = stack_.size() - from;
    if (arena_.size() + n > 0xfffffff0u) give_up();
    arena_.append(stack_.begin() + from, stack_.end());
    c.count += static_cast<std::uint32_t>(n);
    stack_.resize(from);
  }
  // torch.Size(tuple of ints) or torch.Size().
  Value size_of(Value args) {
    std::span<const Value> a = items(args);
    if (a.size() > 1 || (a.size() == 1 && !is_tuple(a[0]))) give_up();
    std::span<const Value> values = a.empty() ? std::span<const Value>() : items(a[0]);
    extents_.push_back(Extents{static_cast<std::uint32_t>(extent_values_.size()), static_cast<std::uint32_t>(values.size())});
    for (Value v : values) {
      if (!is_integer(v)) give_up();
      extent_values_.push_back(integer_of(v));
    }
    if (extent_values_.size() > 0xfffffff0u) give_up();
    return make(dims, extents_.size() - 1);
  }
  // Extents as a tensor's shape, a chunk's offsets or sizes: at most 64, none negative (as the
  // document reader requires), each passed to `f`.
  template <class F>
  void for_each_extent(std::uint32_t e, F&& f) const {
    const Extents& x = extents_[e];
    if (x.count > 64) give_up();
    for (std::uint32_t i = 0; i < x.count; ++i) {
      std::int64_t v = extent_values_[x.start + i];
      if (v < 0) give_up();
      f(v);
    }
  }
  void dims_into(Dims& out, std::uint32_t e) const {
    for_each_extent(e, [&](std::int64_t v) { out.push_back(v); });
  }
  // Packed (PackedChunkBoxes): the count, then the values.
  void extents_into(std::vector<std::int64_t>& out, std::uint32_t e) const {
    out.push_back(extents_[e].count);
    for_each_extent(e, [&](std::int64_t v) { out.push_back(v); });
  }

  // --- stack and memo ---
  // Pushes a value just made, and takes the MEMOIZE that nearly always follows one (a quarter of
  // a DCP file's opcodes): a branch at each maker predicts far better than the opcode dispatch.
  [[gnu::always_inline]] void push_new(Value v) {
    stack_.push_back(v);
    if (input_.take('\x94')) memo_.push_back(v);
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value pop() {
    if (stack_.size() <= floor()) give_up();
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value top() const {
    if (stack_.size() <= floor()) give_up();
    return stack_.back();
  }
  std::size_t pop_mark() {
    if (marks_.empty()) give_up();
    std::size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }
  void put(std::size_t id) {
    Value v = top();
    if (id < memo_.size())
      memo_[id] = v;
    else if (id == memo_.size())
      memo_.push_back(v);
    else
      give_up();
  }
  // Only values that nothing can change come back from the memo.
  void get(std::size_t id) {
    if (id >= memo_.size()) give_up();
    Value v = memo_[id];
    switch (tag(v)) {
      case small_int: case big_int: case special: case text: case global: case dims: case props: case inert: case bytes_entry:
        stack_.push_back(v);
        return;
      default:
        give_up();
    }
  }

  // --- records ---
  // Fields of a BUILD state, a dict (as the document reader: string keys only, the last one of a
  // repeated key).
  template <std::size_t N>
  std::array<std::optional<Value>, N> fields(Value state, const std::array<Field, N>& wanted) const {
    if (tag(state) != composite || composites_[payload(state)].kind != Kind::dict) give_up();
    std::array<std::optional<Value>, N> found{};
    std::span<const Value> pairs = items(state);
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
      if (tag(pairs[i]) != text) continue;
      Field f = texts_[payload(pairs[i])].field;
      for (std::size_t k = 0; k < N; ++k)
        if (wanted[k] == f) found[k] = pairs[i + 1];
    }
    return found;
  }
  static Value present(const std::optional<Value>& v, Tag t) {
    if (!v || tag(*v) != t) give_up();
    return *v;
  }

  // REDUCE: torch.Size, or an inert value.
  void reduce() {
    Value args = pop(), callable = pop();
    if (tag(callable) != global || !is_tuple(args)) give_up();
    Record r = records_[payload(callable)];
    if (r == Record::size)
      push_new(size_of(args));
    else if (r == Record::inert)
      push_new(make(inert, 0));
    else
      give_up();
  }
  // NEWOBJ: a record class called with no arguments.
  void new_object(Value args) {
    Value callable = pop();
    if (tag(callable) != global || args != empty_tuple) give_up();
    Record r = records_[payload(callable)];
    if (r > Record::storage_meta) give_up();
    pending_.push_back(Pending{static_cast<std::uint8_t>(payload(callable)), static_cast<std::uint32_t>(arena_.size()),
                               static_cast<std::uint32_t>(composites_.size())});
    push_new(make(pending, pending_.size() - 1));
  }
  void build() {
    Value state = pop();
    Value target = top();
    if (tag(target) == dims || tag(target) == inert) return;  // state no decoder reads
    if (tag(target) != pending) give_up();
    const Pending p = pending_[payload(target)];
    const PickleGlobal& g = dcp_metadata_globals[p.global];
    Value record = 0;
    switch (records_[p.global]) {
      case Record::chunk_storage: {
        auto [offsets, sizes] = fields(state, std::array{f_offsets, f_sizes});
        chunks_.push_back(Chunk{payload(present(offsets, dims)), payload(present(sizes, dims))});
        record = make(chunk, chunks_.size() - 1);
        break;
      }
      case Record::tensor_properties: record = make(props, static_cast<std::size_t>(dtype_of(state))); break;
      case Record::tensor_storage: record = tensor_of(state); break;
      case Record::bytes_storage: record = make(bytes_entry, 0); break;
      case Record::metadata_index: {
        auto [fqn, offset, hint] = fields(state, std::array{f_fqn, f_offset, f_index});
        Index index{payload(present(fqn, text)), no_extents, -1};
        if (offset && *offset != none_value) index.offsets = payload(present(offset, dims));
        if (hint && is_integer(*hint)) index.hint = std::max(integer_of(*hint), std::int64_t{-1});
        indices_.push_back(index);
        record = make(metadata_index, indices_.size() - 1);
        break;
      }
      case Record::storage_info: {
        auto [path, offset, length, transforms] = fields(state, std::array{f_relative_path, f_offset, f_length, f_transform_descriptors});
        if (transforms && *transforms != none_value && (!is_container(*transforms) || !items(*transforms).empty())) give_up();
        infos_.push_back(Info{payload(present(path, text)), byte_count(offset), byte_count(length)});
        record = make(storage_info, infos_.size() - 1);
        break;
      }
      case Record::metadata: {
        auto [state_dict, storage] = fields(state, std::array{f_state_dict_metadata, f_storage_data});
        layouts_.push_back(layout_of(present(state_dict, composite), storage, g.module == dcp_v1 ? DcpFlavor::torch_1_13 : DcpFlavor::torch_2));
        record = make(metadata, layouts_.size() - 1);
        break;
      }
      case Record::storage_meta: record = make(inert, 0); break;
      default: give_up();
    }
    // What the state held is decoded: drop it, with everything made since the object was.
    arena_.resize(p.arena);
    composites_.resize(p.composites);
    pending_.resize(payload(target));
    stack_[stack_.size() - 1] = record;
  }
  bool is_container(Value v) const { return v == empty_tuple || tag(v) == composite; }
  std::uint64_t byte_count(const std::optional<Value>& v) const {
    if (!v || !is_integer(*v) || integer_of(*v) < 0) give_up();
    return static_cast<std::uint64_t>(integer_of(*v));
  }
  // TensorProperties' state: (dtype, layout, requires_grad, memory_format, pin_memory), or its dict.
  DType dtype_of(Value state) const {
    std::optional<Value> dtype;
    if (tag(state) == composite && composites_[payload(state)].kind == Kind::tuple)
      dtype = items(state)[0];
    else
      dtype = fields(state, std::array{f_dtype})[0];
    if (!dtype || tag(*dtype) != global || records_[payload(*dtype)] != Record::dtype) give_up();
    return dtype_from_torch(dcp_metadata_globals[payload(*dtype)].name);  // FormatError where unsupported: given up
  }
  Value tensor_of(Value state) {
    auto [properties, size, chunk_list] = fields(state, std::array{f_properties, f_size, f_chunks});
    Value list = present(chunk_list, composite);
    if (composites_[payload(list)].kind != Kind::list) give_up();
    StoredTensor t;
    t.dtype = static_cast<DType>(payload(present(properties, props)));
    dims_into(t.shape, payload(present(size, dims)));
    PackedChunkBoxes boxes{tensors_.size(), 0, {}};
    std::span<const Value> chunk_values = items(list);
    std::vector<std::uint32_t> offset_records(chunk_values.size());
    for (std::size_t c = 0; c < chunk_values.size(); ++c) {
      if (tag(chunk_values[c]) != chunk) give_up();
      const Chunk& k = chunks_[payload(chunk_values[c])];
      extents_into(boxes.extents, k.offsets);
      extents_into(boxes.extents, k.sizes);
      offset_records[c] = k.offsets;
    }
    boxes.count = chunk_values.size();
    tensors_.push_back(std::move(t));
    offset_records_.push_back(std::move(offset_records));
    box_maker_.add(std::move(boxes));
    return make(tensor, tensors_.size() - 1);
  }

  // The layout of Metadata's state_dict_metadata and storage_data, as the document reader builds it.
  CheckpointLayout layout_of(Value state_dict, std::optional<Value> storage, DcpFlavor flavor) {
    if (composites_[payload(state_dict)].kind != Kind::dict || !layouts_.empty()) give_up();
    std::vector<std::vector<StoredChunk>> chunk_vectors = box_maker_.finish();
    if (!storage || (*storage != none_value && (tag(*storage) != composite || composites_[payload(*storage)].kind != Kind::dict))) give_up();
    CheckpointLayout layout;
    layout.format = CheckpointFormat::dcp;
    layout.dcp_flavor = flavor;
    std::unordered_map<std::string_view, std::size_t> tensor_index, entry_index;
    std::vector<std::vector<std::uint32_t>> offset_records;
    std::span<const Value> entries = items(state_dict);
    for (std::size_t i = 0; i + 1 < entries.size(); i += 2) {
      Value key = entries[i], value = entries[i + 1];
      if (tag(key) != text) give_up();
      std::string_view name = text_of(key);
      if (tag(value) == bytes_entry || (tag(value) == pending && records_[pending_[payload(value)].global] == Record::bytes_storage)) {
        entry_index.emplace(name, layout.entries.size());
        layout.entries.push_back(StoredEntry{std::string(name)});
      } else if (tag(value) == tensor) {
        tensor_index.emplace(name, layout.tensors.size());
        StoredTensor& t = layout.tensors.emplace_back(std::move(tensors_[payload(value)]));
        t.name = name;
        t.chunks = std::move(chunk_vectors[payload(value)]);
        offset_records.push_back(std::move(offset_records_[payload(value)]));
      } else {
        give_up();
      }
    }
    if (*storage == none_value) return layout;
    // Each item's tensor and chunk are found first, on two threads where there are many (the
    // layout is only read), then the items are given their places in the file's order.
    std::span<const Value> pairs = items(*storage);
    std::size_t count = pairs.size() / 2;
    std::vector<std::uint32_t> tensor_of_item(count), chunk_of_item(count);
    auto find_chunks = [&](std::size_t begin, std::size_t end) {
      DcpChunkPlacer placer(layout, offset_records, what_);
      std::optional<std::string_view> last_fqn;
      std::size_t last_tensor = 0;
      for (std::size_t i = begin; i < end; ++i) {
        if (tag(pairs[2 * i]) != metadata_index || tag(pairs[2 * i + 1]) != storage_info) give_up();
        const Index& index = indices_[payload(pairs[2 * i])];
        std::string_view fqn = text_at(index.fqn);
        if (fqn != last_fqn) {  // consecutive items usually name one tensor (torch writes the name again each time)
          if (entry_index.contains(fqn)) {
            tensor_of_item[i] = no_tensor;
            continue;
          }
          auto t = tensor_index.find(fqn);
          if (t == tensor_index.end()) give_up();
          last_fqn = fqn;
          last_tensor = t->second;
        }
        DcpStoragePlace place{last_tensor, std::nullopt, std::nullopt, 0, 0, 0};
        if (index.hint >= 0) place.hint = index.hint;
        if (index.offsets != no_extents) place.offset_record = index.offsets;
        tensor_of_item[i] = static_cast<std::uint32_t>(last_tensor);
        chunk_of_item[i] = static_cast<std::uint32_t>(placer.chunk_of(place, [&](std::uint32_t e, Dims& offsets, std::string_view) { dims_into(offsets, e); }));
      }
    };
    std::exception_ptr second_half_error;
    {
      std::jthread second_half;  // after all it uses: joined before they are released
      if (count >= items_for_two_threads) {
        try {
          second_half = std::jthread([&] {
            try {
              find_chunks(count / 2, count);
            } catch (...) {
              second_half_error = std::current_exception();
            }
          });
        } catch (const std::system_error&) {
        }
      }
      find_chunks(0, second_half.joinable() ? count / 2 : count);
    }
    if (second_half_error) std::rethrow_exception(second_half_error);
    DcpChunkPlacer placer(layout, offset_records, what_);
    DcpFiles files(layout.files);
    std::vector<std::uint32_t> file_of_text(texts_.size(), no_file);  // most items share their file's name
    for (std::size_t i = 0; i < count; ++i) {
      const Info& info = infos_[payload(pairs[2 * i + 1])];
      std::string_view fqn = text_at(indices_[payload(pairs[2 * i])].fqn);
      std::uint32_t file = file_of_text[info.path];
      if (file == no_file) file = file_of_text[info.path] = files.index_of(what_, fqn, text_at(info.path));
      if (tensor_of_item[i] == no_tensor) {
        StoredEntry& entry = layout.entries[entry_index.at(fqn)];
        entry.file = file;
        entry.offset = info.offset;
        entry.bytes = info.length;
      } else {
        placer.assign(DcpStoragePlace{tensor_of_item[i], std::nullopt, std::nullopt, file, info.offset, info.length}, chunk_of_item[i]);
      }
    }
    return layout;
  }

  std::string_view data_;
  const std::string& what_;
  PickleInput input_;
  std::vector<Record> records_;  // per allowed global
  AppendArray<Value> stack_, memo_, arena_;
  std::vector<std::size_t> marks_;
  AppendArray<Composite> composites_;
  AppendArray<Text> texts_;
  AppendArray<std::int64_t> big_ints_, extent_values_;
  AppendArray<Extents> extents_;
  AppendArray<Pending> pending_;
  AppendArray<Chunk> chunks_;
  AppendArray<Index> indices_;
  AppendArray<Info> infos_;
  std::vector<StoredTensor> tensors_;
  std::vector<std::vector<std::uint32_t>> offset_records_;  // per tensor, its chunks' offsets (Extents)
  std::vector<CheckpointLayout> layouts_;
  ChunkBoxMaker box_maker_;
};

}  // namespace shardalg::detail
