// Laws of mesh layouts on random meshes, placements and shapes.
#include "generators.hpp"

using namespace shardalg;
using namespace shardalg::testing;

namespace {

// How many ranks hold each element, computed from the tiles' boxes.
std::vector<index_t> coverage(const MeshLayout& layout) {
  const Dims& shape = layout.global_shape();
  std::vector<index_t> count(static_cast<std::size_t>(volume(shape)), 0);
  for (index_t rank : layout.mesh().devices())
    for (const Box& box : layout.tile(rank).boxes()) {
      for (index_t i = 0; i < box.volume(); ++i) {
        Dims local = row_major_coordinate(box.shape, i);
        for (std::size_t d = 0; d < local.size(); ++d) local[d] += box.offset[d];
        ++count[static_cast<std::size_t>(row_major_position(shape, local))];
      }
    }
  return count;
}

}  // namespace

TEST_CASE("properties of mesh layouts") {
  SHARDALG_PROPERTY("the tiles of all ranks cover every element exactly replication-factor times",
                    [](const MeshLayout& layout) {
                      for (index_t c : coverage(layout)) RC_ASSERT(c == layout.replication_factor());
                    });

  SHARDALG_PROPERTY("local shape is the tile's size; the offset is its first index or the dim size",
                    [](const MeshLayout& layout) {
                      for (index_t rank : layout.mesh().devices()) {
                        Tile tile = layout.tile(rank);
                        ShardInfo info = layout.shard_info(rank);
                        RC_ASSERT(info.local_shape == tile.shape());
                        for (std::size_t d = 0; d < tile.ndim(); ++d)
                          RC_ASSERT(info.global_offset[d] ==
                                    (tile.dim(d).empty() ? layout.global_shape()[d] : tile.dim(d).first()));
                      }
                    });

  SHARDALG_PROPERTY("ranks_holding finds exactly the ranks whose tile meets the box", [](const MeshLayout& layout) {
    const Dims& shape = layout.global_shape();
    Dims offset, extent;
    for (index_t n : shape) {
      index_t lo = *rc::gen::inRange<index_t>(0, n + 1);
      offset.push_back(lo);
      extent.push_back(*rc::gen::inRange<index_t>(0, n - lo + 1));
    }
    Box box(offset, extent);
    std::vector<index_t> expected;
    for (index_t rank : layout.mesh().devices()) {
      Tile tile = layout.tile(rank);
      bool meets = !box.empty();
      for (std::size_t d = 0; d < shape.size() && meets; ++d)
        meets = !tile.dim(d).restrict_to(box.offset[d], box.end(d)).empty();
      if (meets) expected.push_back(rank);
    }
    std::sort(expected.begin(), expected.end());
    RC_ASSERT(layout.ranks_holding(box) == expected);
  });

  SHARDALG_PROPERTY("replica groups partition the ranks into equal tiles", [](const MeshLayout& layout) {
    std::size_t total = 0;
    for (const auto& group : layout.replica_groups()) {
      total += group.size();
      for (index_t rank : group) RC_ASSERT(layout.tile(rank) == layout.tile(group.front()));
    }
    RC_ASSERT(total == static_cast<std::size_t>(layout.mesh().size()));
  });

  SHARDALG_PROPERTY("a slice map's pieces tile each rank's local buffer in row-major order",
                    [](const MeshLayout& layout) {
                      SliceMap map(layout);
                      for (const RankSlice& slice : map.ranks()) {
                        index_t held = 0;
                        for (const Piece& piece : slice.pieces()) {
                          held += piece.global.volume();
                          RC_ASSERT(slice.tile.local_position(piece.global.offset) ==
                                    row_major_position(slice.tile.shape(), piece.local));
                        }
                        RC_ASSERT(held == slice.tile.volume());
                      }
                    });
}

TEST_CASE("properties of shard orders") {
  SHARDALG_PROPERTY("order -> placements -> order -> placements is stable, and with divisible extents the strided "
                    "label holds what the explicit order holds",
                    [] {
                      DeviceMesh mesh = *gen_mesh();
                      std::vector<index_t> dims(mesh.ndim());
                      for (std::size_t m = 0; m < dims.size(); ++m) dims[m] = static_cast<index_t>(m);
                      dims = *gen_shuffled(dims);
                      std::size_t count = *rc::gen::inRange<std::size_t>(1, mesh.ndim() + 1);
                      ShardOrder order{{0, std::vector<index_t>(dims.begin(), dims.begin() + static_cast<std::ptrdiff_t>(count))}};
                      auto placements = placements_from_shard_order(mesh.shape(), order);
                      auto back = shard_order_from_placements(mesh.shape(), placements);
                      RC_ASSERT(back.has_value());
                      RC_ASSERT(placements_from_shard_order(mesh.shape(), *back) == placements);
                      index_t divisor = 1;
                      for (index_t m : order[0].mesh_dims) divisor *= mesh.size(static_cast<std::size_t>(m));
                      index_t n = divisor * *rc::gen::inRange<index_t>(0, 4);
                      std::vector<Placement> shards(mesh.ndim(), Placement::replicate());
                      for (index_t m : order[0].mesh_dims) shards[static_cast<std::size_t>(m)] = Placement::shard(0);
                      MeshLayout physical(mesh, shards, Dims{n}, order);
                      MeshLayout label(mesh, placements, Dims{n});
                      RC_ASSERT(compare_layouts(physical, label).equivalent());
                    });
}

TEST_CASE("first_difference names an element exactly one tile holds, or none when both hold the same") {
  SHARDALG_PROPERTY("on every rank of two layouts of one shape and mesh", [](const MeshLayout& a) {
    std::vector<Placement> rotated = a.placements();  // each placement stays valid for the shape
    std::rotate(rotated.begin(), rotated.begin() + (rotated.empty() ? 0 : 1), rotated.end());
    MeshLayout b(a.mesh(), rotated, a.global_shape());
    const Dims& shape = a.global_shape();
    RC_PRE(volume(shape) <= 4096);
    for (index_t rank : a.mesh().devices()) {
      Tile in_a = a.tile(rank), in_b = b.tile(rank);
      std::optional<TileDifference> d = first_difference(in_a, in_b);
      bool same_elements = true;  // element by element
      for (index_t i = 0; i < volume(shape) && same_elements; ++i) {
        Dims element = row_major_coordinate(shape, i);
        same_elements = in_a.contains(element) == in_b.contains(element);
      }
      RC_ASSERT(same_elements == !d.has_value());
      if (d) {
        const Tile &holder = d->held_by_a ? in_a : in_b, &other = d->held_by_a ? in_b : in_a;
        RC_ASSERT(holder.contains(d->element) && !other.contains(d->element));
        RC_ASSERT(holder.local_position(d->element) == d->local_position);
      } else {
        RC_ASSERT(in_a.empty() == in_b.empty());
        if (!in_a.empty()) RC_ASSERT(in_a == in_b);  // the same elements are the same bytes
      }
    }
  });
}

TEST_CASE("layout transforms move each placement with its tensor dim") {
  SHARDALG_PROPERTY("stack(K): rank r holds [0, K) x its original tile", [](const MeshLayout& layout) {
    index_t count = *rc::gen::inRange<index_t>(0, 4);
    MeshLayout stacked = layout.stack(count);
    RC_ASSERT(stacked.global_shape().size() == layout.tensor_ndim() + 1 && stacked.global_shape()[0] == count);
    for (index_t rank : layout.mesh().devices()) {
      Tile original = layout.tile(rank), tile = stacked.tile(rank);
      RC_ASSERT(tile.dim(0) == IndexMap::contiguous(0, count));
      for (std::size_t d = 0; d < layout.tensor_ndim(); ++d) RC_ASSERT(tile.dim(d + 1) == original.dim(d));
    }
  });
  SHARDALG_PROPERTY("transpose swaps the tiles' dims; twice is the identity", [](const MeshLayout& generated) {
    MeshLayout layout = generated.stack(3);  // at least one dim
    auto ndim = static_cast<index_t>(layout.tensor_ndim());
    index_t a = *rc::gen::inRange<index_t>(0, ndim), b = *rc::gen::inRange<index_t>(0, ndim);
    MeshLayout swapped = layout.transpose(a, b);
    RC_ASSERT(swapped.transpose(a, b) == layout);
    for (index_t rank : layout.mesh().devices()) {
      Tile original = layout.tile(rank), tile = swapped.tile(rank);
      RC_ASSERT(tile.dim(static_cast<std::size_t>(a)) == original.dim(static_cast<std::size_t>(b)));
      RC_ASSERT(tile.dim(static_cast<std::size_t>(b)) == original.dim(static_cast<std::size_t>(a)));
    }
  });
  SHARDALG_PROPERTY("squeeze undoes unsqueeze, and unsqueeze keeps every tile", [](const MeshLayout& layout) {
    index_t dim = *rc::gen::inRange<index_t>(0, static_cast<index_t>(layout.tensor_ndim()) + 1);
    MeshLayout wider = layout.unsqueeze(dim);
    RC_ASSERT(wider.squeeze(dim) == layout);
    for (index_t rank : layout.mesh().devices()) RC_ASSERT(wider.tile(rank).volume() == layout.tile(rank).volume());
  });
}

TEST_CASE("layout transforms refuse what they cannot do, naming it") {
  MeshLayout layout = MeshLayout::parse("dp=2", "S(1)", Dims{1, 6});
  CHECK_THROWS_WITH_AS(layout.squeeze(1), doctest::Contains("extent 6, not 1"), Error);
  CHECK_THROWS_WITH_AS(MeshLayout::parse("dp=2", "S(0)", Dims{1, 6}).squeeze(0), doctest::Contains("split by S(0)"), Error);
  CHECK_THROWS_WITH_AS(layout.transpose(0, 2), doctest::Contains("dim 2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(layout.stack(-1), doctest::Contains("count -1"), Error);
  // TransformerEngine's GroupedLinear: 4 stacked [out, in] weights, column-parallel on tp=2.
  MeshLayout weight = MeshLayout::parse("tp=2", "S(0)", Dims{6, 3});
  CHECK(weight.stack(4) == MeshLayout::parse("tp=2", "S(1)", Dims{4, 6, 3}));
  CHECK(weight.stack(4).shard_info(1) == ShardInfo{Dims{4, 3, 3}, Dims{0, 3, 0}});
}
