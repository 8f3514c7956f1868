// Shared by `shardalg plan` and `shardalg demo`: model inputs, plan output and simulation.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli_support.hpp"
#include "model_file.hpp"
#include "shardalg/exec/check_data.hpp"

namespace shardalg::cli {

// --optimizer: the optimizer whose states the model carries (model/optimizer_state.hpp).
inline CLI::Option* add_optimizer_option(CLI::App& cmd, std::string& optimizer) {
  return cmd.add_option("--optimizer", optimizer, "Optimizer state with the model: " + optimizer_names() + " (adam: fp32 master, exp_avg, exp_avg_sq, step)")
      ->capture_default_str();
}

// The plan's totals, as CommunicationVolume computes them, and the time it took to plan.
inline void print_summary(const ModelReshardPlan& plan, const TransferList& transfers, double plan_seconds) {
  CommunicationVolume volume(plan, transfers);
  auto bytes = [](double b) { return byte_count(b).dump(); };  // exact integers while int64 holds them
  std::cout << "bytes moved between ranks  " << bytes(volume.moved_bytes()) << "\n"
            << "bytes kept local           " << bytes(volume.local_bytes()) << "\n"
            << "messages                   " << volume.messages() << "\n"
            << "max bytes sent by a rank   " << bytes(volume.max_sent()) << "\n"
            << "max bytes received         " << bytes(volume.max_received()) << "\n"
            << "lower bound (bytes)        " << bytes(volume.lower_bound_total()) << "\n"
            << "transfers (boxes)          " << transfers.size() << "\n"
            << "plan time                  " << plan_seconds * 1e3 << " ms\n";
}

// {"transfers": [{"src", "dst", "tensor", "src_buffer", "dst_buffer", "boxes": [{"offset", "shape",
// "src_offset", "dst_offset"}]}]}, one entry per (src, dst, tensor) in plan order; a buffer is
// named as ModelLayout::buffer_name names it (the tensor, or a flat partition's scheme and first tensor).
inline nlohmann::ordered_json transfers_json(const ModelReshardPlan& plan, const TransferList& transfers) {
  std::map<std::tuple<index_t, index_t, index_t>, std::size_t> entry_of;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const Transfer& t : transfers) {
    auto key = std::make_tuple(t.src_rank, t.dst_rank, t.tensor);
    auto it = entry_of.find(key);
    if (it == entry_of.end()) {
      it = entry_of.emplace(key, out.size()).first;
      auto tensor = static_cast<std::size_t>(t.tensor);
      const ModelLayout &src = plan.source(), &dst = plan.destination();
      out.push_back({{"src", t.src_rank}, {"dst", t.dst_rank}, {"tensor", src[tensor].name}, {"src_buffer", src.buffer_name(src.buffer_of(tensor))},
                     {"dst_buffer", dst.buffer_name(dst.buffer_of(plan.destination_index(tensor)))}, {"boxes", nlohmann::ordered_json::array()}});
    }
    out[it->second]["boxes"].push_back({{"offset", to_json(t.global.offset)}, {"shape", to_json(t.global.shape)},
                                        {"src_offset", to_json(t.src_local)}, {"dst_offset", to_json(t.dst_local)}});
  }
  return out;
}

// Runs the whole plan in the host simulator over raw bytes of each tensor's dtype, on
// exec/check_data.hpp's values (every element's own; with Partial sources each contributor
// class's, reduced exactly in any order), and checks every element every destination rank holds,
// as `shardalg run` does across processes. Returns the number of mismatches; prints one line.
inline index_t simulate_and_check(const ModelReshardPlan& plan, const TransferList& transfers) {
  constexpr index_t limit = index_t{1} << 27;
  constexpr std::uint64_t seed = 1;
  index_t elements = 0;
  for (const auto& t : plan.source().tensors()) elements = checked_add(elements, volume(t.layout.global_shape()));
  if (elements > limit)
    detail::fail("--simulate: the model has ", elements, " elements, more than the simulator's ", limit, "; use --scale-down");
  const ModelLayout &src = plan.source(), &dst = plan.destination();
  ModelBuffers<std::byte> sources(src.buffer_count());
  for (index_t rank : src.ranks()) {
    std::vector<std::vector<std::byte>> data = make_source_data(plan, rank, seed);
    for (std::size_t t = 0; t < src.size(); ++t)
      if (src[t].layout.mesh().contains(rank)) sources[src.buffer_of(t)].try_emplace(rank, data[src.buffer_of(t)]);
  }
  ModelBuffers<std::byte> out = simulate_model(plan, transfers, sources);
  DataCheck total;
  for (index_t rank : dst.ranks()) {
    std::vector<std::vector<std::byte>> held(dst.buffer_count());
    for (std::size_t b = 0; b < held.size(); ++b)
      if (auto it = out[b].find(rank); it != out[b].end()) held[b] = std::move(it->second);
    DataCheck check = check_destination_data(plan, rank, held, seed);
    total.elements += check.elements;
    total.mismatches += check.mismatches;
  }
  std::cout << "simulated: " << elements << " elements in " << plan.size() << " tensors, " << total.mismatches << " mismatches\n";
  return total.mismatches;
}

}  // namespace shardalg::cli
