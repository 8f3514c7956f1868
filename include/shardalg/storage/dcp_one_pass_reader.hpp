// DCP's `.metadata` read in one pass: the pickle's opcodes run on a stack of typed values, each
// record decoded as its BUILD completes it, and what the records no longer need dropped there.
// The records that make up nearly all of a file (chunks, storage items' indices and places) are
// read in one go where their bytes are as torch writes them (quick_record), leaving exactly what
// their opcodes would.
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
//
// The layout is built beside the pass, by a worker (on a thread of its own for large inputs):
// each tensor's chunk vector once the tensor is built, then, from the first batch of storage
// items on (torch pickles state_dict_metadata, complete, before storage_data), the tensors and
// entries, and each batch of items as it is added to its dict. The worker is given copies, never
// what the pass goes on changing; the two dicts it was given must turn out to be the Metadata's
// (and unchanged since), else this reader gives up. Before each task the worker maps the next
// pages of the pass's arrays (PagesAhead), so that the pass rarely stops for a fresh page.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shardalg/core/page_populator.hpp"
#include "shardalg/storage/checkpoint_layout.hpp"
#include "shardalg/storage/dcp_records.hpp"
#include "shardalg/storage/format_dtypes.hpp"
#include "shardalg/storage/pickle_reader.hpp"

namespace shardalg::detail {

// Runs tasks in the order given, on a thread of its own where started (else each at once): the
// reader below hands it the work that needs no more of the file, so that it is done beside the
// pass. After a task fails, the rest are dropped; finish() rethrows the failure.
//
// The thread is woken once `wake_after` tasks wait, or at finish(), rather than for each: a
// wake-up costs an interrupt between cores, which on a virtual machine took 4% of a parse when
// each of its 2,300 tasks had one. Before each task, and before it sleeps, the thread does its
// `upkeep` (work that cannot wait for the tasks, but needs no order among them).
class SerialWorker {
 public:
  SerialWorker() = default;
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  ~SerialWorker() {  // what is left to do is dropped
    cancelled_ = true;
    stop();
  }

  static constexpr std::size_t wake_after = 8;

  // Without a thread to spare, tasks run as they are added (and `upkeep` never). The thread calls
  // `upkeep` (which must not throw) until it returns false (nothing more to do for now) before
  // each task and before it sleeps, not once finish() is called.
  void start(std::function<bool()> upkeep = {}) {
    upkeep_ = std::move(upkeep);
    try {
      thread_ = std::thread([this] { work(); });
    } catch (const std::system_error&) {
    }
  }
  void add(std::function<void()> task) {
    if (!thread_.joinable()) return task();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(task));
      if (queue_.size() < wake_after) return;
    }
    ready_.notify_one();
  }
  // Returns once every task added has run: what they wrote may then be read.
  void finish() {
    stop();
    if (error_) std::rethrow_exception(error_);
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
    std::deque<std::function<void()>> batch;
    while (true) {
      do_upkeep();
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return done_ || !queue_.empty(); });
        if (queue_.empty()) return;
        batch.swap(queue_);
      }
      for (std::function<void()>& task : batch) {
        if (error_ || cancelled_) break;
        do_upkeep();
        try {
          task();
        } catch (...) {
          error_ = std::current_exception();  // read by finish() after the join
        }
      }
      batch.clear();
    }
  }
  void do_upkeep() {
    if (upkeep_)
      while (!done_.load(std::memory_order_relaxed) && upkeep_()) {
      }
  }

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  std::function<bool()> upkeep_;
  std::atomic<bool> done_ = false;  // written under mutex_; read without it by the upkeep loop
  std::atomic<bool> cancelled_ = false;
  std::exception_ptr error_;
};

class DcpOnePassReader {
 public:
  // The layout `data` records, or none where this reader gives up (see above). Inputs of
  // `worker_from` bytes or more have a worker thread (the default: 16 MiB; tests give 0 to run
  // that path on small inputs). With `quick_records` false, every opcode runs one by one (tests
  // check that reading records in one go changes nothing).
  static constexpr std::size_t worker_from_bytes = std::size_t{16} << 20;
  static std::optional<CheckpointLayout> read(std::string_view data, const std::string& what, std::size_t worker_from = worker_from_bytes,
                                              bool quick_records = true) {
    DcpOnePassReader reader(data, what, worker_from);
    reader.quick_records_ = quick_records;
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
  struct Info {
    std::uint32_t path;  // Text
    std::uint64_t offset, length;
  };
  static constexpr Value not_streamed = ~Value{0};  // no dict (its tag is metadata's)

  // What the worker is given (all of it read, so that nothing it reads changes under it):
  struct NamedRecord {  // an item of state_dict_metadata
    std::string_view name;
    bool tensor;           // else a BytesStorageMetadata
    std::uint32_t record;  // the tensor record's index
  };
  struct StorageItem {  // a storage_data item
    std::string_view fqn, path;
    std::uint32_t path_text;
    std::int64_t hint;
    std::uint32_t offset_record;                 // its offsets' torch.Size, or no_extents (zeros)
    std::uint32_t offsets_start, offsets_count;  // their values, in the batch's offset_values
    std::uint64_t offset, length;
  };
  struct StorageBatch {
    std::vector<StorageItem> items;
    std::vector<std::int64_t> offset_values;
  };
  // What the worker keeps while it places storage items.
  struct StorageMatching {
    StorageMatching(CheckpointLayout&& l, std::vector<std::vector<std::uint32_t>>&& records, std::unordered_map<std::string_view, std::size_t>&& tensors,
                    std::unordered_map<std::string_view, std::size_t>&& entries, std::string_view what)
        : layout(std::move(l)), offset_records(std::move(records)), tensor_index(std::move(tensors)), entry_index(std::move(entries)),
          placer(layout, offset_records, what), files(layout.files) {}
    CheckpointLayout layout;
    std::vector<std::vector<std::uint32_t>> offset_records;  // per tensor of the layout, its chunks' offsets (Extents)
    std::unordered_map<std::string_view, std::size_t> tensor_index, entry_index;
    DcpChunkPlacer placer;
    DcpFiles files;
    std::vector<std::uint32_t> file_of_text;  // most items share their file's name
    std::optional<std::string_view> last_fqn;
    std::size_t last_tensor = 0;
  };

  DcpOnePassReader(std::string_view data, const std::string& what, std::size_t worker_from) : data_(data), what_(what), input_(data) {
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
    // A large input has its chunk vectors made and its storage items placed on another thread,
    // which first, before each task, maps the next pages of the arrays the pass fills: taking
    // the fresh pages' faults off the pass made it 10-20% faster.
    if (data.size() >= worker_from) {
      publish_progress();
      worker_.start([this] { return ahead_.step(); });
    }
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
        case '}':  // EMPTY_DICT, nearly always a record's state, filled by SETITEMS next
          push_new(new_composite(Kind::dict));
          if (input_.take('(')) marks_.push_back(stack_.size());
          break;
        case 't': push_new(tuple_from(pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          std::size_t n = op - 0x84u;
          if (stack_.size() < floor() + n) give_up();
          push_new(tuple_from(stack_.size() - n));
          if (input_.take('\x85')) push_new(tuple_from(stack_.size() - 1));  // torch.Size's arguments: ((extents...),)
          if (input_.take('R')) reduce();
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
          if (storage_pairs(dict, k)) stream_storage(dict, 1);
          break;
        }
        case 'u': {  // SETITEMS
          std::size_t m = pop_mark();
          if (m == 0 || (stack_.size() - m) % 2) give_up();
          Value dict = stack_[m - 1];
          std::size_t pairs = (stack_.size() - m) / 2;
          bool storage = pairs > 0 && storage_pairs(dict, stack_[m]);
          extend(dict, Kind::dict, m);
          if (storage) stream_storage(dict, pairs);
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
        case 'h': get_or_record(input_.le<std::uint8_t>()); break;   // BINGET
        case 'j': get_or_record(input_.le<std::uint32_t>()); break;  // LONG_BINGET
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
    return new_dims(values, [&](Value v) {
      if (!is_integer(v)) give_up();
      return integer_of(v);
    });
  }
  // A torch.Size's extents, `extent` of each of `values`, kept: its dims value.
  template <class T, class Extent>
  Value new_dims(std::span<const T> values, Extent extent) {
    extents_.push_back(Extents{static_cast<std::uint32_t>(extent_values_.size()), static_cast<std::uint32_t>(values.size())});
    for (const T& v : values) extent_values_.push_back(extent(v));
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
  static bool unchangeable(Value v) {
    switch (tag(v)) {
      case small_int: case big_int: case special: case text: case global: case dims: case props: case inert: case bytes_entry: return true;
      default: return false;
    }
  }
  void get(std::size_t id) {
    if (id >= memo_.size() || !unchangeable(memo_[id])) give_up();
    stack_.push_back(memo_[id]);
  }

  // BINGET, or where it fetches the class of a chunk, a storage item's index or its place, the
  // record it begins, read in one go (quick_record): those records are most of a DCP file.
  void get_or_record(std::size_t id) {
    if (quick_records_ && id < memo_.size() && tag(memo_[id]) == global) {
      Record r = records_[payload(memo_[id])];
      if ((r == Record::chunk_storage || r == Record::metadata_index || r == Record::storage_info) && quick_record(r)) return;
    }
    get(id);
  }
  // A record of class `r` as torch pickles it, after the BINGET of its class:
  //   EMPTY_TUPLE NEWOBJ MEMOIZE EMPTY_DICT MEMOIZE MARK (key value)... SETITEMS BUILD
  // where each key is a BINGET of a string, and each value a BININT1/BININT2/BININT in [0, 2^28),
  // None, a BINGET of a value nothing can change, a SHORT_BINUNICODE MEMOIZE, or a torch.Size of
  // 1-3 such integers: BINGET torch.Size, the integers, TUPLEn MEMOIZE TUPLE1 MEMOIZE REDUCE
  // MEMOIZE. Read in one go, it leaves exactly what running those opcodes leaves (the same memo
  // entries, names, extents and record, the record on the stack, or the same give-up). Returns
  // false, having changed nothing, for any other bytes: the opcodes then run one by one.
  bool quick_record(Record r) {
    const auto* begin = reinterpret_cast<const unsigned char*>(data_.data());
    const auto* at = begin + input_.pos();
    const auto* end = begin + data_.size();
    auto byte = [&](unsigned char c) {
      if (at == end || *at != c) return false;
      ++at;
      return true;
    };
    auto memo_value = [&](Value& out) {  // BINGET or LONG_BINGET
      std::size_t id;
      if (end - at >= 2 && *at == 'h') {
        id = at[1];
        at += 2;
      } else if (end - at >= 5 && *at == 'j') {
        id = load_le<std::uint32_t>(reinterpret_cast<const std::byte*>(at + 1));
        at += 5;
      } else {
        return false;
      }
      if (id >= memo_.size()) return false;
      out = memo_[id];
      return true;
    };
    auto small_integer = [&](std::int64_t& out) {  // what the opcodes make a small_int
      if (*at == 'K' && end - at >= 2) {
        out = at[1];
        at += 2;
      } else if (*at == 'M' && end - at >= 3) {
        out = load_le<std::uint16_t>(reinterpret_cast<const std::byte*>(at + 1));
        at += 3;
      } else if (*at == 'J' && end - at >= 5) {
        out = load_le<std::int32_t>(reinterpret_cast<const std::byte*>(at + 1));
        if (out < 0 || out > std::int64_t{payload_mask}) return false;
        at += 5;
      } else {
        return false;
      }
      return true;
    };
    enum class Made : std::uint8_t { nothing, name, extents };
    struct Item {  // filled as read (not initialised: most records have 2 or 3 items)
      Field key;
      Made made;
      Value value;                          // where nothing is made
      std::size_t text_at, text_length;     // Made::name
      std::uint32_t count;                  // Made::extents
      std::array<std::int64_t, 3> extents;
    };
    std::array<Item, 4> state;
    std::size_t items = 0, texts = 0, sizes = 0;
    if (!(byte(')') && byte(0x81) && byte(0x94) && byte('}') && byte(0x94) && byte('('))) return false;
    while (at != end && *at != 'u') {
      if (items == state.size()) return false;
      Item& item = state[items++];
      item.made = Made::nothing;
      item.value = none_value;
      Value key;
      if (!memo_value(key) || tag(key) != text) return false;
      item.key = texts_[payload(key)].field;
      if (at == end) return false;
      std::int64_t v;
      if (*at == 'N') {
        ++at;
      } else if (*at == 0x8c) {  // SHORT_BINUNICODE
        if (end - at < 2 || end - at - 2 < at[1]) return false;
        item.made = Made::name;
        item.text_at = static_cast<std::size_t>(at + 2 - begin);
        item.text_length = at[1];
        at += 2 + item.text_length;
        if (!byte(0x94)) return false;
        ++texts;
      } else if (*at == 'h' || *at == 'j') {
        if (!memo_value(item.value) || !unchangeable(item.value)) return false;
        if (tag(item.value) == global && records_[payload(item.value)] == Record::size) {
          item.made = Made::extents;
          item.count = 0;
          for (; item.count < 3 && at != end && small_integer(v); ++item.count) item.extents[item.count] = v;
          if (item.count == 0 || !(byte(static_cast<unsigned char>(0x84 + item.count)) && byte(0x94) && byte(0x85) && byte(0x94) && byte('R') && byte(0x94)))
            return false;
          ++sizes;
        }
      } else if (small_integer(v)) {
        item.value = make(small_int, static_cast<std::size_t>(v));
      } else {
        return false;
      }
    }
    if (!(byte('u') && byte('b'))) return false;
    // Within the bounds the opcodes check, and not a record the opcodes would find made after the
    // dicts given to the worker.
    const std::size_t first_composite = composites_.size(), record = pending_.size();
    if (first_composite + 1 + 2 * sizes > payload_mask || record > payload_mask || extents_.size() + sizes > payload_mask ||
        texts_.size() + texts > payload_mask || extent_values_.size() + 3 * sizes > 0xfffffff0u || arena_.size() + 2 * items + 3 > 0xfffffff0u ||
        drops_streamed_dicts(first_composite))
      return false;
    // What the opcodes make, in their order.
    memo_.push_back(make(pending, record));            // the object NEWOBJ made
    memo_.push_back(make(composite, first_composite));  // its state dict
    std::size_t composites = first_composite + 1;
    std::array<Value, field_count> found;  // the fields given, by `given`'s bits
    std::uint32_t given = 0;
    for (std::size_t i = 0; i < items; ++i) {
      Item& item = state[i];
      if (item.made == Made::name) {
        std::string_view name = data_.substr(item.text_at, item.text_length);
        texts_.push_back(Text{item.text_at, static_cast<std::uint32_t>(item.text_length), field_of(name)});
        item.value = make(text, texts_.size() - 1);
        memo_.push_back(item.value);
      } else if (item.made == Made::extents) {
        memo_.push_back(make(composite, composites++));  // the extents' tuple
        memo_.push_back(make(composite, composites++));  // torch.Size's arguments
        item.value = new_dims(std::span<const std::int64_t>(item.extents.data(), item.count), [](std::int64_t v) { return v; });
        memo_.push_back(item.value);
      }
      if (item.key != no_field) {  // the last of a repeated key
        found[item.key] = item.value;
        given |= 1u << item.key;
      }
    }
    auto field = [&](Field f) { return given >> f & 1 ? std::optional<Value>(found[f]) : std::nullopt; };
    input_.need(static_cast<std::size_t>(at - begin) - input_.pos());
    switch (r) {
      case Record::chunk_storage: stack_.push_back(chunk_record(field(f_offsets), field(f_sizes))); break;
      case Record::metadata_index: stack_.push_back(index_record(field(f_fqn), field(f_offset), field(f_index))); break;
      default: stack_.push_back(info_record(field(f_relative_path), field(f_offset), field(f_length), field(f_transform_descriptors)));
    }
    return true;
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
        record = chunk_record(offsets, sizes);
        break;
      }
      case Record::tensor_properties: record = make(props, static_cast<std::size_t>(dtype_of(state))); break;
      case Record::tensor_storage: record = tensor_of(state); break;
      case Record::bytes_storage: record = make(bytes_entry, 0); break;
      case Record::metadata_index: {
        auto [fqn, offset, hint] = fields(state, std::array{f_fqn, f_offset, f_index});
        record = index_record(fqn, offset, hint);
        break;
      }
      case Record::storage_info: {
        auto [path, offset, length, transforms] = fields(state, std::array{f_relative_path, f_offset, f_length, f_transform_descriptors});
        record = info_record(path, offset, length, transforms);
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
    // What the state held is decoded: drop it, with everything made since the object was (not the
    // dicts whose items went to the worker, but for Metadata's, whose BUILD has taken them).
    if (records_[p.global] != Record::metadata && drops_streamed_dicts(p.composites)) give_up();
    arena_.resize(p.arena);
    composites_.resize(p.composites);
    pending_.resize(payload(target));
    stack_[stack_.size() - 1] = record;
  }
  // The records of a chunk, a storage item's index and its place, from their states' fields.
  Value chunk_record(std::optional<Value> offsets, std::optional<Value> sizes) {
    chunks_.push_back(Chunk{payload(present(offsets, dims)), payload(present(sizes, dims))});
    return make(chunk, chunks_.size() - 1);
  }
  Value index_record(std::optional<Value> fqn, std::optional<Value> offset, std::optional<Value> hint) {
    Index index{payload(present(fqn, text)), no_extents, -1};
    if (offset && *offset != none_value) index.offsets = payload(present(offset, dims));
    if (hint && is_integer(*hint)) index.hint = std::max(integer_of(*hint), std::int64_t{-1});
    indices_.push_back(index);
    return make(metadata_index, indices_.size() - 1);
  }
  Value info_record(std::optional<Value> path, std::optional<Value> offset, std::optional<Value> length, std::optional<Value> transforms) {
    if (transforms && *transforms != none_value && (!is_container(*transforms) || !items(*transforms).empty())) give_up();
    infos_.push_back(Info{payload(present(path, text)), byte_count(offset), byte_count(length)});
    return make(storage_info, infos_.size() - 1);
  }
  // Whether the BUILD of an object made when there were `composites` composites would drop a dict
  // whose items went to the worker (made since).
  bool drops_streamed_dicts(std::size_t composites) const {
    return streamed_storage_ != not_streamed && std::max(payload(*streamed_state_dict_), payload(streamed_storage_)) >= composites;
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
    if (composites_[payload(list)].kind != Kind::list || streamed_state_dict_) give_up();  // a tensor after its name's dict was taken
    StoredTensor t;
    t.dtype = static_cast<DType>(payload(present(properties, props)));
    dims_into(t.shape, payload(present(size, dims)));
    std::vector<std::int64_t> boxes;  // per chunk its offsets, then its sizes, each as a count then the values
    std::span<const Value> chunk_values = items(list);
    std::vector<std::uint32_t> offset_records(chunk_values.size());
    for (std::size_t c = 0; c < chunk_values.size(); ++c) {
      if (tag(chunk_values[c]) != chunk) give_up();
      const Chunk& k = chunks_[payload(chunk_values[c])];
      extents_into(boxes, k.offsets);
      extents_into(boxes, k.sizes);
      offset_records[c] = k.offsets;
    }
    std::size_t record = tensors_.size();
    tensors_.push_back(std::move(t));
    offset_records_.push_back(std::move(offset_records));
    publish_progress();
    worker_.add([this, record, count = chunk_values.size(), boxes = std::move(boxes)] { make_chunks(record, count, boxes); });
    return make(tensor, record);
  }
  // Worker: tensor record `record`'s chunk vector, from its packed boxes.
  void make_chunks(std::size_t record, std::size_t count, const std::vector<std::int64_t>& boxes) {
    if (chunk_vectors_.size() <= record) chunk_vectors_.resize(record + 1);
    std::vector<StoredChunk>& out = chunk_vectors_[record];
    out.resize(count);
    const std::int64_t* next = boxes.data();
    for (StoredChunk& c : out)
      for (Dims* extents : {&c.box.offsets, &c.box.sizes})
        for (std::int64_t n = *next++; n > 0; --n) extents->push_back(*next++);
  }

  // Where the arrays the pass fills lie and end, and how far it has read: published for the
  // worker's PagesAhead with each task handed to it.
  static constexpr std::size_t progress_ranges = 9;
  void publish_progress() {
    std::size_t range = 0;
    auto array = [&](auto& a) { ahead_.publish(range++, a.data(), a.size() * sizeof(a[0]), a.capacity() * sizeof(a[0])); };
    array(memo_);
    array(arena_);  // storage_data's items stay there to the end
    array(texts_);
    array(extents_);
    array(extent_values_);
    array(chunks_);
    array(indices_);
    array(infos_);
    ahead_.publish(range++, data_.data(), input_.pos(), data_.size(), true);
  }

  // --- the layout, built by the worker beside the pass ---
  // The tensors and entries that state_dict_metadata names, once they are all read: the worker
  // makes the layout's tensors and entries of them, and then places storage items as they come.
  void begin_storage(Value state_dict) {
    if (tag(state_dict) != composite || composites_[payload(state_dict)].kind != Kind::dict) give_up();
    std::vector<NamedRecord> named;
    std::span<const Value> entries = items(state_dict);
    for (std::size_t i = 0; i + 1 < entries.size(); i += 2) {
      Value key = entries[i], value = entries[i + 1];
      if (tag(key) != text) give_up();
      if (tag(value) == bytes_entry || (tag(value) == pending && records_[pending_[payload(value)].global] == Record::bytes_storage))
        named.push_back(NamedRecord{text_of(key), false, 0});
      else if (tag(value) == tensor)
        named.push_back(NamedRecord{text_of(key), true, payload(value)});
      else
        give_up();
    }
    worker_.add([this, named = std::move(named), tensors = std::move(tensors_), offset_records = std::move(offset_records_)]() mutable {
      CheckpointLayout layout;
      std::vector<std::vector<std::uint32_t>> named_offset_records;
      std::unordered_map<std::string_view, std::size_t> tensor_index, entry_index;
      for (const NamedRecord& n : named) {
        if (!n.tensor) {
          entry_index.emplace(n.name, layout.entries.size());
          layout.entries.push_back(StoredEntry{std::string(n.name)});
          continue;
        }
        tensor_index.emplace(n.name, layout.tensors.size());
        StoredTensor& t = layout.tensors.emplace_back(std::move(tensors[n.record]));
        t.name = n.name;
        t.chunks = std::move(chunk_vectors_[n.record]);
        named_offset_records.push_back(std::move(offset_records[n.record]));
      }
      matching_.emplace(std::move(layout), std::move(named_offset_records), std::move(tensor_index), std::move(entry_index), what_);
    });
    tensors_.clear();
    offset_records_.clear();
    streamed_state_dict_ = state_dict;
    streamed_state_dict_count_ = entries.size();
  }
  // The dict of state_dict_metadata, on the stack below storage_data's as torch writes them.
  Value state_dict_on_stack() const {
    for (std::size_t i = stack_.size(); i >= 2; --i) {
      Value key = stack_[i - 2], value = stack_[i - 1];
      if (tag(key) == text && texts_[payload(key)].field == f_state_dict_metadata && tag(value) == composite && composites_[payload(value)].kind == Kind::dict)
        return value;
    }
    give_up();
  }
  // Whether pairs added to `dict` from `first_key` on (by SETITEM or SETITEMS) are storage_data's,
  // which go to the worker.
  bool storage_pairs(Value dict, Value first_key) const { return tag(first_key) == metadata_index || dict == streamed_storage_; }
  // The last `pairs` items just added to `dict`, storage_data's (MetadataIndex, _StorageInfo)
  // pairs, handed to the worker.
  void stream_storage(Value dict, std::size_t pairs) {
    if (streamed_storage_ == not_streamed) {
      begin_storage(state_dict_on_stack());
      streamed_storage_ = dict;
    } else if (dict != streamed_storage_) {
      give_up();  // storage items in a second dict
    }
    std::span<const Value> added = items(dict).last(2 * pairs);
    StorageBatch batch = spare_batch();
    batch.items.reserve(pairs);
    for (std::size_t i = 0; i < pairs; ++i) {
      if (tag(added[2 * i]) != metadata_index || tag(added[2 * i + 1]) != storage_info) give_up();
      const Index& index = indices_[payload(added[2 * i])];
      const Info& info = infos_[payload(added[2 * i + 1])];
      StorageItem& item = batch.items.emplace_back(StorageItem{text_at(index.fqn), text_at(info.path), info.path, index.hint, index.offsets, 0, 0, info.offset, info.length});
      if (index.offsets != no_extents) {
        item.offsets_start = static_cast<std::uint32_t>(batch.offset_values.size());
        item.offsets_count = extents_[index.offsets].count;
        for_each_extent(index.offsets, [&](std::int64_t v) { batch.offset_values.push_back(v); });
      }
    }
    streamed_items_ += pairs;
    publish_progress();
    worker_.add([this, batch = std::move(batch)]() mutable {
      place_storage(batch);
      recycle(std::move(batch));
    });
  }
  // Batches the worker has placed, for the pass to fill again: their memory is mapped already
  // (fresh memory for each batch cost the pass 14,000 page faults).
  StorageBatch spare_batch() {
    std::lock_guard lock(spare_mutex_);
    if (spare_batches_.empty()) return {};
    StorageBatch batch = std::move(spare_batches_.back());
    spare_batches_.pop_back();
    return batch;
  }
  void recycle(StorageBatch&& batch) {
    batch.items.clear();
    batch.offset_values.clear();
    std::lock_guard lock(spare_mutex_);
    spare_batches_.push_back(std::move(batch));
  }
  // Worker: gives each item's chunk (or entry) its file and byte range, in the file's order.
  void place_storage(const StorageBatch& batch) {
    StorageMatching& m = *matching_;
    for (const StorageItem& item : batch.items) {
      if (item.fqn != m.last_fqn) {  // consecutive items usually name one tensor (torch writes the name again each time)
        if (auto e = m.entry_index.find(item.fqn); e != m.entry_index.end()) {
          StoredEntry& entry = m.layout.entries[e->second];
          entry.file = file_of(m, item);
          entry.offset = item.offset;
          entry.bytes = item.length;
          continue;
        }
        auto t = m.tensor_index.find(item.fqn);
        if (t == m.tensor_index.end()) give_up();
        m.last_fqn = item.fqn;
        m.last_tensor = t->second;
      }
      DcpStoragePlace place{m.last_tensor, std::nullopt, std::nullopt, 0, item.offset, item.length};
      if (item.hint >= 0) place.hint = item.hint;
      if (item.offset_record != no_extents) place.offset_record = item.offset_record;
      std::size_t c = m.placer.chunk_of(place, [&](std::uint32_t, Dims& offsets, std::string_view) {
        for (std::uint32_t i = 0; i < item.offsets_count; ++i) offsets.push_back(batch.offset_values[item.offsets_start + i]);
      });
      place.file = file_of(m, item);
      m.placer.assign(place, c);
    }
  }
  std::uint32_t file_of(StorageMatching& m, const StorageItem& item) const {
    if (m.file_of_text.size() <= item.path_text) m.file_of_text.resize(item.path_text + 1, no_file);
    std::uint32_t& file = m.file_of_text[item.path_text];
    if (file == no_file) file = m.files.index_of(what_, item.fqn, item.path);
    return file;
  }

  // The layout of Metadata's state_dict_metadata and storage_data, as the document reader builds
  // it: the worker's, where what it was given is what these dicts hold.
  CheckpointLayout layout_of(Value state_dict, std::optional<Value> storage, DcpFlavor flavor) {
    if (composites_[payload(state_dict)].kind != Kind::dict || !layouts_.empty()) give_up();
    if (!storage || (*storage != none_value && (tag(*storage) != composite || composites_[payload(*storage)].kind != Kind::dict))) give_up();
    std::size_t stored_items = *storage == none_value ? 0 : items(*storage).size() / 2;
    if (streamed_storage_ == not_streamed) {
      if (stored_items > 0) give_up();  // items that were not (MetadataIndex, _StorageInfo) pairs
      begin_storage(state_dict);
    } else if (*streamed_state_dict_ != state_dict || composites_[payload(state_dict)].count != streamed_state_dict_count_ || *storage != streamed_storage_ ||
               streamed_items_ != stored_items) {
      give_up();  // not the dicts given to the worker, or added to since
    }
    worker_.finish();
    CheckpointLayout layout = std::move(matching_->layout);
    layout.format = CheckpointFormat::dcp;
    layout.dcp_flavor = flavor;
    return layout;
  }

  std::string_view data_;
  const std::string& what_;
  bool quick_records_ = true;
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
  std::vector<StoredTensor> tensors_;                       // per tensor record, until the worker takes them
  std::vector<std::vector<std::uint32_t>> offset_records_;  // per tensor record, its chunks' offsets (Extents)
  std::vector<CheckpointLayout> layouts_;
  std::optional<Value> streamed_state_dict_;  // the dicts whose items went to the worker
  std::size_t streamed_state_dict_count_ = 0;
  Value streamed_storage_ = not_streamed;
  std::size_t streamed_items_ = 0;
  // Written by the worker's tasks only, read once it has finished:
  std::vector<std::vector<StoredChunk>> chunk_vectors_;  // per tensor record
  std::optional<StorageMatching> matching_;
  std::mutex spare_mutex_;
  std::vector<StorageBatch> spare_batches_;  // guarded by spare_mutex_
  PagesAhead ahead_{progress_ranges};        // stepped by the worker only
  SerialWorker worker_;  // last: stopped before what its tasks use is released
};

}  // namespace shardalg::detail
