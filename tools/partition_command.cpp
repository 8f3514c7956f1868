#include <iomanip>
#include <iostream>
#include <memory>

#include "cli_support.hpp"
#include "commands.hpp"
#include "memory_bound.hpp"

namespace shardalg::cli {
namespace {

struct PartitionOptions {
  std::string scheme;
  index_t world = 0;
  std::string numels, shapes;
  index_t bucket_size = 0, sub_group_size = 0, alignment = 2;
  std::vector<index_t> shared_embedding;
  bool pad_nccl_busbw = false;
  bool json = false;
  MemoryBound memory;
};

const std::vector<std::string> kPartitionOptionalFlags = {"--bucket-size", "--sub-group-size", "--alignment", "--shared-embedding",
                                                 "--pad-nccl-busbw"};

std::vector<FlatTensor> build_tensors(const PartitionOptions& o) {
  if (o.numels.empty() && o.shapes.empty()) detail::fail("give --numels or --shapes");
  if (o.shapes.empty()) return flat_tensors_from_numels(parse_integer_list(o.numels, "numels"));
  std::vector<Dims> shapes = parse_shape_list(o.shapes);
  if (!o.numels.empty()) {
    std::vector<index_t> numels = parse_integer_list(o.numels, "numels");
    if (numels.size() != shapes.size())
      detail::fail("--numels lists ", numels.size(), " params but --shapes lists ", shapes.size());
    for (std::size_t i = 0; i < shapes.size(); ++i)
      if (volume(shapes[i]) != numels[i])
        detail::fail("param ", i, ": shape ", shapes[i], " has ", volume(shapes[i]), " elements but its numel is ", numels[i]);
  }
  return flat_tensors_from_shapes(shapes);
}

FlatLayout build_layout(const CLI::App& cmd, const PartitionOptions& o) {
  if (o.world <= 0) detail::fail("--world ", o.world, " must be positive");
  std::vector<index_t> group = iota_ranks(o.world);
  std::vector<FlatTensor> tensors = build_tensors(o);
  if (o.scheme == "zero3") {
    require_applicable(cmd, kPartitionOptionalFlags, {"--sub-group-size"}, "--scheme zero3");
    return zero3_layout(std::move(tensors), group);
  }
  if (o.scheme == "zero12") {
    require_applicable(cmd, kPartitionOptionalFlags, {"--alignment"}, "--scheme zero12");
    return zero12_layout(std::move(tensors), group, o.alignment);
  }
  require_applicable(cmd, kPartitionOptionalFlags, {"--bucket-size", "--shared-embedding", "--pad-nccl-busbw"}, "--scheme megatron");
  MegatronBufferOptions options;
  if (cmd.count("--bucket-size")) options.bucket_size = o.bucket_size;
  options.own_bucket_params.insert(o.shared_embedding.begin(), o.shared_embedding.end());
  options.pad_for_high_nccl_busbw = o.pad_nccl_busbw;
  return megatron_layout(std::move(tensors), group, options);
}

std::string format_boxes(const std::vector<Box>& boxes) {
  std::string out;
  for (const Box& box : boxes) {
    out += (out.empty() ? "" : " ") + format_box(box);
  }
  return out;
}

void run(const CLI::App& cmd, const PartitionOptions& o) {
  // The layout keeps each rank's position; fragments are computed rank by rank as they print.
  o.memory.require(static_cast<double>(o.world) * 64, "partition", detail::concat(o.world, " ranks, about 64 bytes each"));
  FlatLayout layout = build_layout(cmd, o);
  bool with_boxes = !o.shapes.empty();
  std::vector<Zero3SubGroup> sub_groups;
  if (o.scheme == "zero3" && cmd.count("--sub-group-size")) sub_groups = zero3_sub_groups(layout, o.sub_group_size);
  if (o.json) {  // streamed rank by rank: a group of millions never becomes one document in memory
    nlohmann::ordered_json head = {{"scheme", o.scheme}, {"world", o.world}, {"partition_size", layout.partition_size()}};
    std::string text = head.dump();
    text.pop_back();  // the closing brace: the ranks and what follows them come next
    std::cout << text << ",\"ranks\":[";
    bool first = true;
    for (index_t rank : layout.group()) {
      nlohmann::ordered_json fragments = nlohmann::ordered_json::array();
      for (const FlatFragment& f : layout.fragments(rank)) {
        nlohmann::ordered_json item = {{"param", f.tensor}, {"param_offset", f.tensor_offset},
                                       {"partition_offset", f.partition_offset}, {"numel", f.numel}};
        if (with_boxes) {
          nlohmann::ordered_json boxes = nlohmann::ordered_json::array();
          for (const Box& b : layout.global_boxes(f)) boxes.push_back({{"offset", to_json(b.offset)}, {"shape", to_json(b.shape)}});
          item["boxes"] = boxes;
        }
        fragments.push_back(item);
      }
      std::cout << (first ? "" : ",") << nlohmann::ordered_json{{"rank", rank}, {"padding", layout.padding(rank)}, {"fragments", fragments}}.dump();
      first = false;
    }
    std::cout << ']';
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    if (o.scheme == "megatron") {
      nlohmann::ordered_json buckets = nlohmann::ordered_json::array(), params = nlohmann::ordered_json::array();
      for (const FlatBucket& b : layout.buckets()) buckets.push_back({{"start", b.begin}, {"end", b.end}});
      for (std::size_t i = 0; i < layout.tensors().size(); ++i)
        params.push_back({{"param", i}, {"start", layout.tensor_begin(i)}, {"end", layout.tensor_begin(i) + layout.tensors()[i].numel()}});
      out["buckets"] = buckets;
      out["param_ranges"] = params;
    }
    if (!sub_groups.empty()) {
      nlohmann::ordered_json groups = nlohmann::ordered_json::array();
      for (const Zero3SubGroup& g : sub_groups)
        groups.push_back({{"first_param", g.first_param}, {"params", g.param_count}, {"partition_offset", g.partition_offset},
                          {"partition_numel", g.partition_numel}});
      out["sub_groups"] = groups;
    }
    std::string rest = out.dump();  // "{...}" or "{}": its members follow the ranks
    std::cout << (rest.size() > 2 ? "," + rest.substr(1) : "}") << "\n";
    return;
  }
  std::cout << "scheme " << o.scheme << ", world " << o.world << ", partition size " << layout.partition_size()
            << " elements per rank\n";
  if (o.scheme == "megatron") {
    for (std::size_t b = 0; b < layout.buckets().size(); ++b)
      std::cout << "bucket " << b << ": [" << layout.buckets()[b].begin << ", " << layout.buckets()[b].end << ")\n";
    for (std::size_t i = 0; i < layout.tensors().size(); ++i)
      std::cout << "param " << i << ": [" << layout.tensor_begin(i) << ", " << layout.tensor_begin(i) + layout.tensors()[i].numel() << ")\n";
  }
  for (const Zero3SubGroup& g : sub_groups)
    std::cout << "sub-group: params " << g.first_param << ".." << g.first_param + g.param_count - 1 << ", partition ["
              << g.partition_offset << ", " << g.partition_offset + g.partition_numel << ")\n";
  std::cout << "\n" << std::left << std::setw(6) << "rank" << std::setw(9) << "padding"
            << "fragments: param (param offset -> partition offset, numel)" << (with_boxes ? " global boxes" : "") << "\n";
  for (index_t rank : layout.group()) {
    std::cout << std::setw(6) << rank << std::setw(9) << layout.padding(rank);
    bool first = true;
    for (const FlatFragment& f : layout.fragments(rank)) {
      std::cout << (first ? "" : "  ") << "p" << f.tensor << " (" << f.tensor_offset << " -> " << f.partition_offset << ", " << f.numel
                << ")";
      if (with_boxes) std::cout << " " << format_boxes(layout.global_boxes(f));
      first = false;
    }
    std::cout << (first ? "(padding only)" : "") << "\n";
  }
}

}  // namespace

void add_partition_command(CLI::App& app) {
  auto o = std::make_shared<PartitionOptions>();
  CLI::App* cmd = app.add_subcommand("partition", "ZeRO-3, ZeRO-1/2 or Megatron distributed-optimizer partitions of flattened params");
  cmd->add_option("--scheme", o->scheme, "zero3 (DeepSpeed per-parameter), zero12 (DeepSpeed flat group), megatron (distributed optimizer)")
      ->required()
      ->check(CLI::IsMember({"zero3", "zero12", "megatron"}));
  cmd->add_option("--world", o->world, "Ranks in the partition group (the DP group; for experts the expert-DP group)")->required()->check(within(1, max_ranks));
  cmd->add_option("--numels", o->numels, "Element counts of the params in order, e.g. 10,6,3");
  cmd->add_option("--shapes", o->shapes, "Shapes of the params, e.g. 2x5,6,3 (then fragments also show global boxes)");
  cmd->add_option("--bucket-size", o->bucket_size, "megatron: elements after which a bucket closes")->check(within(1, index_t{1} << 62));
  cmd->add_option("--shared-embedding", o->shared_embedding, "megatron: index of a param that gets its own bucket (repeatable)")->check(within(0, index_t{1} << 30));
  cmd->add_flag("--pad-nccl-busbw", o->pad_nccl_busbw, "megatron: pad buckets to lcm(D, 128, 65536)");
  cmd->add_option("--sub-group-size", o->sub_group_size, "zero3: per-rank elements after which an optimizer sub-group closes")->check(within(1, index_t{1} << 62));
  cmd->add_option("--alignment", o->alignment, "zero12: alignment factor (the buffer is padded to a multiple of it times the world)")
      ->capture_default_str()->check(within(1, index_t{1} << 20));
  cmd->add_flag("--json", o->json, "Print JSON");
  o->memory.add_to(*cmd);
  cmd->callback([cmd, o] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
