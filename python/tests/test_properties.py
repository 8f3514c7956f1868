"""Hypothesis properties: the laws of the algebra and of the executors, on random meshes,
placements and shapes."""

import numpy
from hypothesis import given, settings, strategies as st

import shardalg

MESH_NAMES = ["a", "b", "c"]


@st.composite
def mesh_layouts(draw, shape=None, allow_partial=False):
    ndim = len(shape) if shape is not None else draw(st.integers(1, 3))
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    mesh_ndim = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 3), min_size=mesh_ndim, max_size=mesh_ndim))
    mesh = shardalg.DeviceMesh(MESH_NAMES[:mesh_ndim], tuple(sizes))
    kinds = ["R", "S", "_S"] + (["P"] if allow_partial else [])
    placements = []
    for _ in range(mesh_ndim):
        kind = draw(st.sampled_from(kinds))
        dim = draw(st.integers(0, ndim - 1))
        if kind == "R":
            placements.append("R")
        elif kind == "S":
            placements.append(f"S({dim})")
        elif kind == "_S":
            placements.append(f"_S({dim},{draw(st.integers(1, 3))})")
        else:
            placements.append("P(sum)")
    return shardalg.MeshLayout(mesh, ",".join(placements), shape)


@settings(max_examples=150, deadline=None)
@given(mesh_layouts())
def test_tiles_cover_the_tensor_replication_factor_times(layout):
    """Slice maps tile the global tensor exactly: every element is held by replication_factor ranks."""
    counts = numpy.zeros(layout.shape, dtype=numpy.int64)
    for rank in layout.mesh.devices:
        tile = layout.tile(rank)
        assert tile.shape == layout.shard_info(rank).local_shape or tile.volume() == 0
        if tile.volume():
            counts[numpy.ix_(*tile.index_arrays())] += 1
    assert (counts == layout.replication_factor()).all()


@st.composite
def layout_pairs(draw):
    src = draw(mesh_layouts())
    dst = draw(mesh_layouts(shape=src.shape))
    return src, dst


def buffers_of(model_layout, whole):
    return {r: model_layout.scatter(r, whole) for r in model_layout.ranks}


@settings(max_examples=120, deadline=None)
@given(layout_pairs(), st.integers(0, 2**31))
def test_reshard_then_the_inverse_plan_restores_the_data(pair, seed):
    src, dst = pair
    a = shardalg.ModelLayout([("t", "fp32", src)])
    b = shardalg.ModelLayout([("t", "fp32", dst)])
    whole = {"t": numpy.random.default_rng(seed).standard_normal(src.shape).astype(numpy.float32)}
    there = {r: b.local_buffers(r) for r in b.ranks}
    shardalg.execute_local(shardalg.ModelReshardPlan(a, b), buffers_of(a, whole), there, threads=2)
    back = {r: a.local_buffers(r) for r in a.ranks}
    shardalg.execute_local(shardalg.ModelReshardPlan(b, a), there, back, threads=2)
    original = buffers_of(a, whole)
    for r in a.ranks:
        numpy.testing.assert_array_equal(back[r]["t"], original[r]["t"])


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_execute_local_equals_the_host_simulator(data):
    """The zero-copy executor writes the bytes the C++ reference executor writes, Partial sources included."""
    src = data.draw(mesh_layouts(allow_partial=True))
    dst = data.draw(mesh_layouts(shape=src.shape))
    dtype = data.draw(st.sampled_from(["fp32", "fp64", "int32"]))
    plan = shardalg.ModelReshardPlan(shardalg.ModelLayout([("t", dtype, src)]), shardalg.ModelLayout([("t", dtype, dst)]))
    rng = numpy.random.default_rng(data.draw(st.integers(0, 2**31)))
    numpy_dtype = {"fp32": numpy.float32, "fp64": numpy.float64, "int32": numpy.int32}[dtype]
    sources = {}
    for r in plan.source.ranks:
        (dtype_name, shape), = plan.source._buffer_shapes(r)
        sources[r] = {"t": rng.integers(-50, 50, size=shape).astype(numpy_dtype)}
    destinations = {r: plan.destination.local_buffers(r) for r in plan.destination.ranks}
    shardalg.execute_local(plan, sources, destinations)
    simulated = shardalg._shardalg._host_simulate(plan, {r: [b["t"].tobytes()] for r, b in sources.items()})
    for r in plan.destination.ranks:
        assert destinations[r]["t"].tobytes() == simulated[r][0]


def holds(layout, rank):
    """Boolean mask of the elements `rank` holds."""
    mask = numpy.zeros(layout.shape, dtype=bool)
    tile = layout.tile(rank)
    if tile.volume():
        mask[numpy.ix_(*tile.index_arrays())] = True
    return mask


@settings(max_examples=60, deadline=None)
@given(layout_pairs())
def test_every_destination_element_is_written_once_from_a_holder(pair):
    src, dst = pair
    plan = shardalg.ModelReshardPlan.for_tensor(src, dst)
    transfers = plan.all_transfers()
    written = {r: numpy.zeros(dst.shape, dtype=numpy.int64) for r in dst.mesh.devices}
    for i in range(len(transfers)):
        t = transfers[i]
        box = tuple(slice(o, o + n) for o, n in zip(t.offset, t.shape))
        assert holds(src, t.src_rank)[box].all()
        written[t.dst_rank][box] += 1
    for r in dst.mesh.devices:
        assert (written[r] == holds(dst, r)).all()
