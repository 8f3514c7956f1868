"""Meshes, placements, layouts, tiles, flat partitions, groups, experts and scale factors: the C++
API's behaviour, seen from Python."""

import numpy
import pytest

import shardalg


def roundtrip(value):
    return eval(repr(value), {"shardalg": shardalg})


def test_errors_are_value_errors_naming_the_bad_value():
    with pytest.raises(shardalg.ParseError, match="dp=x"):
        shardalg.DeviceMesh.parse("dp=x")
    assert issubclass(shardalg.Error, ValueError)
    assert issubclass(shardalg.ParseError, shardalg.Error)
    with pytest.raises(shardalg.Error, match="rank 9"):
        shardalg.DeviceMesh.parse("dp=4,tp=2").coordinate_of(9)
    with pytest.raises(shardalg.Error, match="S\\(2\\)|dim 2|2"):
        shardalg.MeshLayout.parse("dp=2", "S(2)", (4, 4))


def test_mesh_groups_coordinates_and_xla_devices():
    mesh = shardalg.DeviceMesh.parse("dp=4,tp=2")
    assert mesh.names == ["dp", "tp"] and mesh.shape == (4, 2) and mesh.size() == 8
    assert mesh.coordinate_of(5) == (2, 1) and mesh.rank_at((2, 1)) == 5
    assert mesh.groups("tp") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert mesh.group_of("dp", 5) == [1, 3, 5, 7]
    transposed = shardalg.DeviceMesh.parse("dp=4,tp=2", "[4,2]<=[2,4]T(1,0)")
    assert transposed.devices == [0, 4, 1, 5, 2, 6, 3, 7]
    assert transposed != mesh
    for m in (mesh, transposed, mesh.flatten(["dp", "tp"], "world"), mesh.slice(["tp"], 5)):
        assert roundtrip(m) == m


def test_placements_print_and_parse_in_pytorch_forms():
    placements = shardalg.parse_placements("_S(0,2),S(0)")
    assert [str(p) for p in placements] == ["_S(0, 2)", "S(0)"]
    assert shardalg.Placement.parse("Shard(dim=1)") == shardalg.Placement.shard(1)
    assert shardalg.Placement.parse("P(avg)").reduce_op == shardalg.ReduceOp.avg
    for p in placements + [shardalg.Placement.replicate(), shardalg.Placement.partial(shardalg.ReduceOp.max)]:
        assert roundtrip(p) == p


def test_placements_from_torch_objects_by_duck_typing():
    class Shard:
        def __init__(self, dim):
            self.dim = dim

    class _StridedShard(Shard):
        def __init__(self, dim, split_factor):
            super().__init__(dim)
            self.split_factor = split_factor

    class Replicate:
        pass

    class Partial:
        reduce_op = "sum"

    layout = shardalg.MeshLayout.parse("dp=4,tp=2", [_StridedShard(0, 2), Shard(0)], (14336, 4096))
    assert layout == shardalg.MeshLayout.parse("dp=4,tp=2", "_S(0,2),S(0)", (14336, 4096))
    assert shardalg.Placement.from_torch(Replicate()) == shardalg.Placement.replicate()
    assert shardalg.Placement.from_torch(Partial()) == shardalg.Placement.partial()
    with pytest.raises(shardalg.Error, match="int"):
        shardalg.Placement.from_torch(1)


def test_readme_example():
    layout = shardalg.MeshLayout.parse("dp=4,tp=2", "_S(0,2),S(0)", (14336, 4096))
    info = layout.shard_info(5)
    assert info.local_shape == (1792, 4096) and info.global_offset == (10752, 0)
    assert layout.ranks_holding((7000, 0), (200, 4096)) == [1, 6]
    assert layout.tile(5).slices() == (slice(10752, 12544), slice(0, 4096))
    assert roundtrip(layout) == layout and roundtrip(info) == info


def test_tiles_as_index_arrays_and_slices():
    layout = shardalg.MeshLayout.parse("dp=2,tp=2", "_S(0,2),S(0)", (8, 3))
    tile = layout.tile(0)  # strided: rows 0,1 of tp chunk 0 and rows 4,5 ... of the dp chunk
    whole = numpy.arange(24).reshape(8, 3)
    rows, cols = tile.index_arrays()
    assert rows.dtype == numpy.int64 and list(cols) == [0, 1, 2]
    assert whole[numpy.ix_(rows, cols)].shape == tile.shape == layout.shard_info(0).local_shape
    if not tile.is_contiguous():
        with pytest.raises(shardalg.Error, match="dim 0"):
            tile.slices()
    assert tile.ranges()[1] == [(0, 3)]


def test_compare_layouts_finds_where_fsdp2_over_tp_label_differs():
    mesh = shardalg.DeviceMesh.parse("dp=3,tp=2")
    physical = shardalg.fsdp_over_tp_physical(mesh, "dp", "tp", (7, 4))
    label = shardalg.fsdp_over_tp_label(mesh, "dp", "tp", (7, 4))
    comparison = shardalg.compare_layouts(physical, label)
    assert not comparison.equivalent()
    assert mesh.rank_at((2, 0)) in [r.rank for r in comparison.differences()]
    assert shardalg.compare_layouts(physical, physical).equivalent()
    for r in comparison.ranks:  # each difference names an element exactly one side holds
        d = r.difference()
        assert (d is None) == r.same()
        if d is not None:
            holder, other = (r.in_a, r.in_b) if d.held_by_a else (r.in_b, r.in_a)
            assert holder.contains(d.element) and not other.contains(d.element)
            rows, cols = holder.index_arrays()
            assert (rows[d.local_position // len(cols)], cols[d.local_position % len(cols)]) == tuple(d.element)
    assert shardalg.first_difference(physical.tile(0), physical.tile(0)) is None
    # Lint: the label names a row rank 4 does not hold; the bytes only leave a rank empty.
    findings = shardalg.lint_layout(label)
    assert [f.kind for f in findings] == ["empty_shards", "label_differs_from_bytes"]
    assert "rank 4 holds element [6, 0]" in findings[1].message
    assert [f.kind for f in shardalg.lint_layout(physical)] == ["empty_shards"]
    assert shardalg.lint_layout(shardalg.fsdp_over_tp_label(mesh, "dp", "tp", (12, 4))) == []


def test_flat_partitions():
    zero3 = shardalg.partition("zero3", [(5, 3), (7,)], world=4)
    assert zero3.partition_size * 4 == zero3.buffer_size
    held = sum(f.numel for r in range(4) for f in zero3.fragments(r))
    assert held == 15 + 7
    megatron = shardalg.partition("megatron", [(1000,), (10,), (300,)], world=3)
    assert megatron.partition_size == 512  # docs/semantics.md's worked example
    with pytest.raises(shardalg.Error, match="zero9"):
        shardalg.partition("zero9", [(4,)], world=2)


def test_groups_experts_and_scale_factors():
    groups = shardalg.autoep_groups(world=8, ep=4)
    meta = shardalg.expert_metadata(groups, num_experts=16, rank=5)
    assert meta.ep_size == 4 and meta.num_local_experts == 4
    assert meta.global_expert_end - meta.global_expert_start == 4
    assert set(groups.families) >= {"ep", "edp"}
    assert 5 in groups.group_of("ep", 5)
    every = shardalg.expert_metadata_of_ranks(groups, num_experts=16)
    assert every[5] == meta and len(every) == 8
    assert (meta.expert_data_parallel_rank, meta.expert_data_parallel_world_size) == (meta.edp_rank, meta.edp_size)
    titan = shardalg.torchtitan_groups(world=8, dp_shard=4, tp=2, ep=2)
    assert titan.expert is not None
    scale = shardalg.fsdp1_scale(8)
    assert scale.pre_divide * scale.post_divide == pytest.approx(8) and scale.average_over == 8
    expert = shardalg.deepspeed_scale(dp=8, ep=4, expert=True)
    assert expert.reduce_group_size == 2 and expert.average_over == 8


def test_layout_transforms_follow_the_tensor_dims():
    weight = shardalg.MeshLayout.parse("tp=2", "S(0)", (6, 3))
    stacked = weight.stack(4)  # TransformerEngine's GroupedLinear: 4 stacked [out, in] weights
    assert stacked == shardalg.MeshLayout.parse("tp=2", "S(1)", (4, 6, 3))
    assert stacked.shard_info(1).local_shape == (4, 3, 3)
    assert weight.transpose(0, 1) == shardalg.MeshLayout.parse("tp=2", "S(1)", (3, 6))
    assert weight.unsqueeze(2).squeeze(2) == weight
    with pytest.raises(shardalg.Error, match="split by S\\(0\\)"):
        shardalg.MeshLayout.parse("tp=2", "S(0)", (1, 6)).squeeze(0)
