// What a framework author writes with shardalg: for an FSDP2 + TP weight, which rows does this
// rank hold, what metadata does a checkpoint record, and does that metadata match the bytes?
//
// Build: part of the project (examples/); run without arguments.
#include <iostream>

#include <shardalg/shardalg.hpp>

int main() {
  using namespace shardalg;
  // Llama-3-8B's gate_proj [14336, 4096], column-parallel over tp=2, FSDP2 over dp=4.
  DeviceMesh mesh = DeviceMesh::parse("dp=4,tp=2");
  MeshLayout label = MeshLayout::parse("dp=4,tp=2", "_S(0,2),S(0)", Dims{14336, 4096});

  // 1. What rank 5 holds (PyTorch's compute_local_shape_and_global_offset, exactly).
  ShardInfo info = label.shard_info(5);
  std::cout << "rank 5 holds " << info.local_shape << " at global offset " << info.global_offset << "\n";

  // 2. Which ranks hold a block a loader wants.
  std::cout << "rows 7000..7199 live on ranks:";
  for (index_t rank : label.ranks_holding(Box(Dims{7000, 0}, Dims{200, 4096}))) std::cout << ' ' << rank;
  std::cout << "\n";

  // 3. The label agrees with FSDP2's physical bytes here (14336 divides evenly)...
  bool even = compare_layouts(label, fsdp_over_tp_physical(mesh, "dp", "tp", Dims{14336, 4096})).equivalent();
  // ...but not for an uneven dim: the check finds the ranks whose metadata would lie.
  LayoutComparison uneven = compare_layouts(fsdp_over_tp_label(DeviceMesh::parse("dp=3,tp=2"), "dp", "tp", Dims{7, 4}),
                                            fsdp_over_tp_physical(DeviceMesh::parse("dp=3,tp=2"), "dp", "tp", Dims{7, 4}));
  std::cout << "label matches bytes at 14336 rows: " << (even ? "yes" : "no") << "\n";
  std::cout << "at 7 rows on dp=3,tp=2, ranks whose label disagrees with the bytes:";
  for (const RankHoldings& r : uneven.differences()) std::cout << ' ' << r.rank << " (label " << r.in_a << ", bytes " << r.in_b << ")";
  std::cout << "\n";
  return even && !uneven.equivalent() ? 0 : 1;
}
