#include <iostream>
#include <memory>
#include <utility>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"
#include "memory_bound.hpp"

namespace shardalg::cli {
namespace {

struct GroupsOptions {
  std::string convention, order = "tp-cp-ep-dp-pp";
  index_t world = 0, ep = 1, tp = 1, pp = 1, etp = 1, cp = 1, dp_shard = 0, dp_replicate = 1, rank = -1, num_experts = 0;
  bool json = false;
  MemoryBound memory;
};

const std::vector<std::string> kGroupsOptionalFlags = {"--tp", "--pp", "--etp", "--cp", "--dp-shard", "--dp-replicate", "--order"};

ParallelGroups build(const CLI::App& cmd, const GroupsOptions& o) {
  const std::string& c = o.convention;
  std::string choice = "--convention " + c;
  if (c == "deepspeed" || c == "deepspeed-dbe") {
    require_applicable(cmd, kGroupsOptionalFlags, {"--pp"}, choice);
    return c == "deepspeed" ? deepspeed_groups(o.world, o.ep, o.pp) : deepspeed_dbe_groups(o.world, o.ep, o.pp);
  }
  if (c == "deepspeed-tp" || c == "autoep") {
    require_applicable(cmd, kGroupsOptionalFlags, {"--tp", "--pp"}, choice);
    return c == "deepspeed-tp" ? deepspeed_tp_groups(o.world, o.ep, o.tp, o.pp) : autoep_groups(o.world, o.ep, o.tp, o.pp);
  }
  if (c == "megatron") {
    require_applicable(cmd, kGroupsOptionalFlags, {"--tp", "--pp", "--etp", "--cp", "--order"}, choice);
    MegatronSizes sizes{o.tp, o.cp, o.ep, o.pp, std::nullopt};
    if (cmd.count("--etp")) sizes.etp = o.etp;
    return megatron_groups(o.world, sizes, o.order);
  }
  require_applicable(cmd, kGroupsOptionalFlags, {"--tp", "--pp", "--cp", "--dp-shard", "--dp-replicate"}, choice);
  TorchtitanSizes sizes{o.pp, o.dp_replicate, o.dp_shard, o.cp, o.tp, o.ep};
  if (!cmd.count("--dp-shard")) {  // like torchtitan's -1: whatever the other sizes leave
    index_t others = checked_mul(checked_mul(checked_mul(o.pp, o.dp_replicate), o.cp), o.tp);
    if (others <= 0 || o.world % others != 0)
      detail::fail("torchtitan: pp*dp_replicate*cp*tp ", others, " does not divide the world size ", o.world);
    sizes.dp_shard = o.world / others;
  }
  return torchtitan_groups(o.world, sizes);
}

// A rank's expert record under DeepSpeed's field names (those its AutoEP engine keeps).
nlohmann::ordered_json expert_json(index_t rank, const ExpertMetadata& m) {
  return {{"rank", rank},
          {"num_experts", m.num_experts},
          {"num_local_experts", m.num_local_experts},
          {"ep_size", m.ep_size},
          {"ep_rank", m.ep_rank},
          {"expert_data_parallel_rank", m.edp_rank},
          {"expert_data_parallel_world_size", m.edp_size},
          {"global_expert_start", m.global_expert_start},
          {"global_expert_end", m.global_expert_end}};
}

std::string expert_line(const ExpertMetadata& m) {
  return detail::concat("experts [", m.global_expert_start, ", ", m.global_expert_end, ") of ", m.num_experts, " (ep rank ", m.ep_rank,
                        " of ", m.ep_size, ", edp rank ", m.edp_rank, " of ", m.edp_size, ")");
}

void run(const CLI::App& cmd, const GroupsOptions& o) {
  bool with_rank = cmd.count("--rank") > 0, with_experts = cmd.count("--num-experts") > 0;
  // Each family lists every rank once, in groups of a few words each; every rank's expert
  // metadata is a record and two positions more.
  const double bytes_per_rank = 11 * 64 + (with_experts && !with_rank ? 96 : 0);
  o.memory.require(static_cast<double>(o.world) * bytes_per_rank, "groups",
                   detail::concat(o.world, " ranks in up to 11 group families", with_experts && !with_rank ? " and their expert metadata" : "",
                                  ", about ", bytes_per_rank, " bytes each"));
  ParallelGroups groups = build(cmd, o);
  // The rank's groups and experts are found before anything prints: a bad rank prints only its error.
  std::vector<std::pair<std::string, std::vector<index_t>>> mine;
  std::vector<ExpertMetadata> experts;  // with --num-experts: that of --rank, or of every rank (index = rank)
  if (with_rank) {
    if (o.rank >= o.world) detail::fail("--rank ", o.rank, " is not a rank of the world of ", o.world);
    for (const auto& [family, list] : groups.families) mine.emplace_back(family, groups.group_of(family, o.rank));
    if (with_experts) experts.push_back(expert_metadata(groups, o.num_experts, o.rank));
  } else if (with_experts) {
    experts = expert_metadata_of_ranks(groups, o.num_experts);
  }
  if (o.json) {  // streamed: a world of millions of ranks never becomes one document in memory
    std::cout << '{';
    bool first = true;
    for (const auto& [family, list] : groups.families) {
      std::cout << (first ? "" : ",") << nlohmann::json(family).dump() << ":[";
      for (std::size_t g = 0; g < list.size(); ++g) {
        if (g) std::cout << ',';
        write_json_array(std::cout, list[g]);
      }
      std::cout << ']';
      first = false;
    }
    if (with_rank) {
      std::cout << ",\"rank\":" << o.rank << ",\"groups_of_rank\":{";
      for (std::size_t i = 0; i < mine.size(); ++i) {
        std::cout << (i ? "," : "") << nlohmann::json(mine[i].first).dump() << ':';
        write_json_array(std::cout, mine[i].second);
      }
      std::cout << '}';
    }
    if (with_experts && with_rank) std::cout << ",\"expert_metadata\":" << expert_json(o.rank, experts.front()).dump();
    if (with_experts && !with_rank) {
      std::cout << ",\"expert_metadata\":[";
      for (std::size_t r = 0; r < experts.size(); ++r) std::cout << (r ? "," : "") << expert_json(static_cast<index_t>(r), experts[r]).dump();
      std::cout << ']';
    }
    std::cout << "}\n";
    return;
  }
  std::cout << groups.convention << ": dense mesh " << groups.dense.to_string() << "\n";
  if (groups.expert) std::cout << groups.convention << ": expert mesh " << groups.expert->to_string() << "\n";
  for (const auto& [family, list] : groups.families) {
    std::cout << family << ":";
    for (const auto& group : list) {
      std::cout << ' ';
      write_json_array(std::cout, group);
    }
    std::cout << "\n";
  }
  if (with_rank) {
    std::cout << "\nrank " << o.rank << ":\n";
    for (const auto& [family, group] : mine) {
      std::cout << "  " << family << ' ';
      write_json_array(std::cout, group);
      std::cout << '\n';
    }
  }
  if (with_experts && with_rank) std::cout << "  " << expert_line(experts.front()) << "\n";
  if (with_experts && !with_rank) {
    std::cout << "\nexperts by rank:\n";
    for (std::size_t r = 0; r < experts.size(); ++r) std::cout << "  " << r << "  " << expert_line(experts[r]) << "\n";
  }
}

}  // namespace

void add_groups_command(CLI::App& app) {
  auto o = std::make_shared<GroupsOptions>();
  CLI::App* cmd = app.add_subcommand("groups", "Process groups (tp, dp, ep, edp, ...) of DeepSpeed, AutoEP, Megatron and torchtitan");
  cmd->add_option("--convention", o->convention, "deepspeed, deepspeed-dbe, deepspeed-tp, autoep, megatron or torchtitan")
      ->required()
      ->check(CLI::IsMember({"deepspeed", "deepspeed-dbe", "deepspeed-tp", "autoep", "megatron", "torchtitan"}));
  cmd->add_option("--world", o->world, "World size")->required()->check(within(1, max_ranks));
  cmd->add_option("--ep", o->ep, "Expert-parallel size")->capture_default_str()->check(within(1, max_ranks));
  cmd->add_option("--tp", o->tp, "Tensor-parallel size")->check(within(1, max_ranks));
  cmd->add_option("--pp", o->pp, "Pipeline-parallel size")->check(within(1, max_ranks));
  cmd->add_option("--etp", o->etp, "megatron: expert tensor-parallel size (default: --tp)")->check(within(1, max_ranks));
  cmd->add_option("--cp", o->cp, "Context-parallel size (megatron, torchtitan)")->check(within(1, max_ranks));
  cmd->add_option("--order", o->order, "megatron: rank order, first varies fastest")->capture_default_str();
  cmd->add_option("--dp-shard", o->dp_shard, "torchtitan: FSDP size (default: what the other sizes leave)")->check(within(1, max_ranks));
  cmd->add_option("--dp-replicate", o->dp_replicate, "torchtitan: HSDP replicate size")->check(within(1, max_ranks));
  cmd->add_option("--rank", o->rank, "Also show the groups containing this rank")->check(within(0, max_ranks - 1));
  cmd->add_option("--num-experts", o->num_experts, "Also show expert metadata (DeepSpeed's field names in JSON): that of --rank, or of every rank")->check(within(1, index_t{1} << 30));
  cmd->add_flag("--json", o->json, "Print JSON: one key per group family, each a list of rank lists");
  o->memory.add_to(*cmd);
  cmd->callback([cmd, o] { run(*cmd, *o); });
}

}  // namespace shardalg::cli
