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

// The plan's totals, as CommunicationVolume counts them, and the time it took to plan.
inline void print_summary(const CommunicationVolume& volume, double plan_seconds) {
  auto bytes = [](double b) { return byte_count(b).dump(); };  // exact integers while int64 holds them
  std::cout << "bytes moved between ranks  " << bytes(volume.moved_bytes()) << "\n"
            << "bytes kept local           " << bytes(volume.local_bytes()) << "\n"
            << "messages                   " << volume.messages() << "\n"
            << "max bytes sent by a rank   " << bytes(volume.max_sent()) << "\n"
            << "max bytes received         " << bytes(volume.max_received()) << "\n"
            << "lower bound (bytes)        " << bytes(volume.lower_bound_total()) << "\n"
            << "transfers (boxes)          " << volume.transfers() << "\n"
            << "plan time                  " << plan_seconds * 1e3 << " ms\n";
}

// Writes {"transfers": [{"src", "dst", "tensor", "src_buffer", "dst_buffer", "boxes": [{"offset",
// "shape", "src_offset", "dst_offset"}]}]}, one entry per (src, dst, tensor) in plan order, as it
// goes: besides the transfers, memory is one entry number per transfer, never the document. A
// buffer is named as ModelLayout::buffer_name names it (the tensor, or a flat partition's scheme
// and first tensor).
inline void write_transfers_json(std::ostream& out, const ModelReshardPlan& plan, const TransferList& transfers) {
  // Entries numbered in order of first appearance; then the transfers grouped by entry (a
  // counting sort keeps plan order within each).
  std::map<std::tuple<index_t, index_t, index_t>, std::size_t> entry_of;
  std::vector<std::size_t> entry(transfers.size()), first_of_entry;
  for (std::size_t i = 0; i < transfers.size(); ++i) {
    auto [it, added] = entry_of.try_emplace(std::make_tuple(transfers.src_rank(i), transfers.dst_rank(i), transfers.tensor(i)), first_of_entry.size());
    if (added) first_of_entry.push_back(i);
    entry[i] = it->second;
  }
  std::vector<std::size_t> start(first_of_entry.size() + 1, 0), grouped(transfers.size());
  for (std::size_t e : entry) ++start[e + 1];
  for (std::size_t e = 0; e < first_of_entry.size(); ++e) start[e + 1] += start[e];
  {
    std::vector<std::size_t> next(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < transfers.size(); ++i) grouped[next[entry[i]]++] = i;
  }
  const ModelLayout &src = plan.source(), &dst = plan.destination();
  auto quoted = [](const std::string& text) { return nlohmann::json(text).dump(); };
  out << "{\"transfers\":[";
  for (std::size_t e = 0; e < first_of_entry.size(); ++e) {
    std::size_t i = first_of_entry[e];
    auto tensor = static_cast<std::size_t>(transfers.tensor(i));
    out << (e ? "," : "") << "{\"src\":" << transfers.src_rank(i) << ",\"dst\":" << transfers.dst_rank(i) << ",\"tensor\":" << quoted(src[tensor].name)
        << ",\"src_buffer\":" << quoted(src.buffer_name(src.buffer_of(tensor)))
        << ",\"dst_buffer\":" << quoted(dst.buffer_name(dst.buffer_of(plan.destination_index(tensor)))) << ",\"boxes\":[";
    for (std::size_t k = start[e]; k < start[e + 1]; ++k) {
      std::size_t j = grouped[k];
      out << (k > start[e] ? "," : "") << "{\"offset\":";
      write_json_array(out, transfers.offset(j));
      out << ",\"shape\":";
      write_json_array(out, transfers.shape(j));
      out << ",\"src_offset\":";
      write_json_array(out, transfers.src_local(j));
      out << ",\"dst_offset\":";
      write_json_array(out, transfers.dst_local(j));
      out << "}";
    }
    out << "]}";
  }
  out << "]}\n";
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
