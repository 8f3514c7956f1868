// A framework's view of shardalg: where does rank 3 hold an FSDP2 + TP weight?
#include <shardalg/shardalg.hpp>

int main() {
  auto layout = shardalg::MeshLayout::parse("dp=4,tp=2", "_S(0,2),S(0)", shardalg::Dims{15, 5});
  auto info = layout.shard_info(3);
  // dp=1, tp=1 holds rows 10..11.
  return info.local_shape == shardalg::Dims{2, 5} && info.global_offset == shardalg::Dims{10, 0} ? 0 : 1;
}
