// Laws of flat layouts (ZeRO-3, ZeRO-1/2, Megatron) and of averaging scale factors.
#include "generators.hpp"

#include <cmath>

using namespace shardalg;
using namespace shardalg::testing;

namespace {

FlatLayout gen_flat_layout() {
  auto numels = *rc::gen::container<std::vector<index_t>>(*rc::gen::inRange<std::size_t>(1, 7), rc::gen::inRange<index_t>(1, 300));
  index_t w = *rc::gen::inRange<index_t>(1, 10);
  std::vector<index_t> group;
  for (index_t i = 0; i < w; ++i) group.push_back(3 * i + 1);  // ranks need not be 0..W-1
  switch (*rc::gen::inRange(0, 3)) {
    case 0: return zero3_layout(flat_tensors_from_numels(numels), group);
    case 1: return zero12_layout(flat_tensors_from_numels(numels), group, *rc::gen::inRange<index_t>(1, 5));
    default: {
      MegatronBufferOptions options;
      if (*rc::gen::arbitrary<bool>()) options.bucket_size = *rc::gen::inRange<index_t>(1, 600);
      if (*rc::gen::arbitrary<bool>()) options.own_bucket_params.insert(*rc::gen::inRange<index_t>(0, static_cast<index_t>(numels.size())));
      return megatron_layout(flat_tensors_from_numels(numels), group, options);
    }
  }
}

}  // namespace

TEST_CASE("properties of flat layouts") {
  SHARDALG_PROPERTY("fragments of all ranks hold every element of every tensor exactly once", [] {
    FlatLayout layout = gen_flat_layout();
    std::vector<std::vector<int>> count;
    for (const FlatTensor& t : layout.tensors()) count.emplace_back(static_cast<std::size_t>(t.numel()), 0);
    for (index_t rank : layout.group())
      for (const FlatFragment& f : layout.fragments(rank))
        for (index_t i = 0; i < f.numel; ++i) ++count[static_cast<std::size_t>(f.tensor)][static_cast<std::size_t>(f.tensor_offset + i)];
    for (const auto& tensor : count)
      for (int c : tensor) RC_ASSERT(c == 1);
  });

  SHARDALG_PROPERTY("a rank's fragments fit its partition without overlap, and padding fills the rest", [] {
    FlatLayout layout = gen_flat_layout();
    for (index_t rank : layout.group()) {
      index_t next = 0, owned = 0;
      for (const FlatFragment& f : layout.fragments(rank)) {
        RC_ASSERT(f.partition_offset >= next);
        next = f.partition_offset + f.numel;
        owned += f.numel;
      }
      RC_ASSERT(next <= layout.partition_size());
      RC_ASSERT(layout.padding(rank) == layout.partition_size() - owned);
    }
    RC_ASSERT(layout.fragments(0).empty());  // rank 0 is not in the group
  });

  SHARDALG_PROPERTY("a fragment's global boxes are its flat interval, at most 2*ndim-1 boxes", [] {
    Dims shape(*rc::gen::container<std::vector<index_t>>(*rc::gen::inRange<std::size_t>(1, 4), rc::gen::inRange<index_t>(1, 7)));
    index_t total = volume(shape);
    index_t begin = *rc::gen::inRange<index_t>(0, total);
    index_t length = *rc::gen::inRange<index_t>(0, total - begin + 1);
    auto boxes = flat_interval_boxes(shape, begin, length);
    RC_ASSERT(boxes.size() <= 2 * shape.size() - 1);
    index_t position = begin;
    for (const Box& box : boxes)
      for (index_t i = 0; i < box.volume(); ++i) {
        Dims p = row_major_coordinate(box.shape, i);
        for (std::size_t d = 0; d < p.size(); ++d) p[d] += box.offset[d];
        RC_ASSERT(row_major_position(shape, p) == position++);
      }
    RC_ASSERT(position == begin + length);
  });
}

TEST_CASE("properties of scale factors") {
  SHARDALG_PROPERTY("every convention's pre-divide, collective and post-divide give the intended average", [] {
    index_t ep = *rc::gen::inRange<index_t>(1, 5);
    index_t world = ep * *rc::gen::inRange<index_t>(1, 9);
    bool expert = *rc::gen::arbitrary<bool>();
    std::vector<ScaleFactors> conventions = {
        zero3_autoep_scale(world, ep, expert),
        deepspeed_scale(world, ep, expert, static_cast<double>(*rc::gen::inRange(1, 4)), *rc::gen::arbitrary<bool>()),
        deepspeed_scale(world, ep, expert, 1.0, false, *rc::gen::inRange<index_t>(1, 4)),  // AutoTP folding
        fsdp1_scale(world),
        fsdp2_scale(world, std::nullopt, *rc::gen::arbitrary<bool>()),
        fsdp2_scale(world, *rc::gen::inRange<index_t>(1, 64)),
        megatron_scale(world, world / ep, expert, *rc::gen::arbitrary<bool>()),
        torchtitan_scale(world, world / ep, expert),
    };
    for (const ScaleFactors& s : conventions) {
      auto grads = *rc::gen::container<std::vector<int>>(static_cast<std::size_t>(s.reduce_group_size), rc::gen::inRange(-1000, 1000));
      double sum = 0, collective = 0;
      for (int g : grads) {
        sum += g;
        collective += g / s.pre_divide;  // each rank pre-divides its own gradient
      }
      if (s.collective == Collective::avg) collective /= static_cast<double>(s.reduce_group_size);
      double result = collective / s.post_divide;
      double intended = sum / static_cast<double>(s.average_over);
      RC_ASSERT(std::abs(result - intended) <= 1e-9 * (1 + std::abs(intended)));
      RC_ASSERT(s.scale == 1.0 / s.post_divide);
    }
  });
}
