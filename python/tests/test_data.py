"""Data in one process: local buffers, scatter / gather, execute_local over numpy arrays, every
buffer checked before anything moves."""

import numpy
import pytest

import shardalg


def fp32_model(scale_down=32):
    return shardalg.model_from_zoo("llama3-8b", scale_down=scale_down).with_dtype("fp32")


def one_tensor(name, dtype, mesh, placements, shape):
    """A ModelLayout of one tensor."""
    return shardalg.ModelLayout([(name, dtype, shardalg.MeshLayout.parse(mesh, placements, shape))])


def whole_tensors(model, rng):
    return {t.name: rng.standard_normal(t.shape).astype(numpy.float32) for t in model.tensors}


@pytest.mark.parametrize("recipe", ["fsdp dp=4", "fsdp-tp dp=2,tp=2", "zero3 dp=3", "zero1 dp=2,tp=2", "megatron-distopt dp=2,tp=2"])
def test_scatter_then_gather_restores_the_tensors(recipe, rng):
    model = fp32_model()
    layout = shardalg.layout_model(model, recipe)
    whole = whole_tensors(model, rng)
    buffers = {r: layout.scatter(r, whole) for r in layout.ranks}
    assert set(buffers[layout.ranks[0]]) == set(layout.buffer_names)
    back = layout.gather(buffers)
    for name, tensor in whole.items():
        numpy.testing.assert_array_equal(back[name], tensor)


def test_local_buffers_have_the_tile_or_partition_shape():
    model = fp32_model()
    fsdp = shardalg.layout_model(model, "fsdp dp=4")
    name = model.tensors[1].name
    info = fsdp[name].placement_layout.shard_info(1)
    assert fsdp.local_buffers(1)[name].shape == info.local_shape
    zero3 = shardalg.layout_model(model, "zero3 dp=4")
    assert len(zero3.buffer_names) == 1 and zero3.buffer_names[0].startswith("zero3:")
    (partition,) = zero3.local_buffers(0).values()
    assert partition.ndim == 1


def test_numpy_cannot_hold_bf16():
    layout = shardalg.layout_model(shardalg.model_from_zoo("llama3-8b", scale_down=64), "fsdp dp=2")
    with pytest.raises(shardalg.Error, match="bf16.*like=torch"):
        layout.local_buffers(0)


def test_execute_local_moves_every_element_once(rng):
    model = fp32_model()
    src = shardalg.layout_model(model, "zero3 dp=4")
    dst = shardalg.layout_model(model, "fsdp-tp dp=2,tp=2")
    plan = shardalg.ModelReshardPlan(src, dst)
    whole = whole_tensors(model, rng)
    sources = {r: src.scatter(r, whole) for r in src.ranks}
    destinations = {r: dst.local_buffers(r) for r in dst.ranks}
    stats = shardalg.execute_local(plan, sources, destinations, threads=2)
    summary = plan.summary()
    assert (stats["bytes_received"], stats["bytes_local"]) == (summary["bytes_moved"], summary["bytes_local"])
    for r in dst.ranks:
        expected = dst.scatter(r, whole)
        for name in dst.buffer_names:
            numpy.testing.assert_array_equal(destinations[r][name], expected[name])


def test_execute_local_checks_every_buffer_before_moving_anything(rng):
    model = fp32_model(64)
    src = shardalg.layout_model(model, "fsdp dp=2")
    dst = shardalg.layout_model(model, "fsdp dp=4")
    plan = shardalg.ModelReshardPlan(src, dst)
    sources = {r: src.local_buffers(r) for r in src.ranks}
    for buffers in sources.values():
        for b in buffers.values():
            b[...] = 7
    name = dst.buffer_names[2]

    def destinations():
        return {r: dst.local_buffers(r) for r in dst.ranks}

    short = destinations()
    short[3][name] = short[3][name].reshape(-1)[1:]
    with pytest.raises(shardalg.Error, match=f"rank 3 destination .*'{name}'"):
        shardalg.execute_local(plan, sources, short)
    assert all((b == 0).all() for r in short for b in short[r].values())  # nothing moved

    wrong_dtype = destinations()
    wrong_dtype[1][name] = wrong_dtype[1][name].astype(numpy.float64)
    with pytest.raises(shardalg.Error, match="fp64"):
        shardalg.execute_local(plan, sources, wrong_dtype)

    missing = destinations()
    del missing[0][name]
    with pytest.raises(shardalg.Error, match=f"rank 0 lacks buffer '{name}'"):
        shardalg.execute_local(plan, sources, missing)

    unknown = destinations()
    unknown[0]["nonsense"] = numpy.zeros(3, numpy.float32)
    with pytest.raises(shardalg.Error, match="nonsense"):
        shardalg.execute_local(plan, sources, unknown)

    strided = destinations()
    rows, cols = strided[2][name].shape
    strided[2][name] = numpy.zeros((rows, 2 * cols), numpy.float32)[:, ::2]
    with pytest.raises(shardalg.Error, match="C-contiguous"):
        shardalg.execute_local(plan, sources, strided)


def test_destination_overlapping_a_source_is_refused():
    src, dst = one_tensor("w", "fp32", "dp=2", "S(0)", (8, 4)), one_tensor("w", "fp32", "dp=2", "S(1)", (8, 4))
    plan = shardalg.ModelReshardPlan(src, dst)
    memory = numpy.zeros(64, numpy.float32)
    sources = {0: {"w": memory[:16].reshape(4, 4)}, 1: {"w": memory[16:32].reshape(4, 4)}}
    destinations = {0: {"w": memory[24:40].reshape(8, 2)}, 1: {"w": memory[40:56].reshape(8, 2)}}
    with pytest.raises(shardalg.Error, match="overlap"):
        shardalg.execute_local(plan, sources, destinations)


def test_partial_sources_are_reduced():
    shape = (6, 5)
    src, dst = one_tensor("g", "fp64", "dp=3", "P(sum)", shape), one_tensor("g", "fp64", "dp=3", "S(0)", shape)
    plan = shardalg.ModelReshardPlan(src, dst)
    base = numpy.arange(30, dtype=numpy.float64).reshape(shape)
    sources = {r: {"g": base * (r + 1)} for r in range(3)}
    destinations = {r: dst.local_buffers(r) for r in range(3)}
    shardalg.execute_local(plan, sources, destinations)
    numpy.testing.assert_array_equal(numpy.concatenate([destinations[r]["g"] for r in range(3)]), base * 6)
    with pytest.raises(shardalg.Error, match="Partial"):
        src.gather(sources)


@pytest.mark.parametrize("dtype,make", [
    ("int16", lambda n: (numpy.arange(n) * 7 - 300).astype(numpy.int16)),
    ("bool", lambda n: numpy.arange(n) % 3 == 0),
    ("complex64", lambda n: (numpy.arange(n) + 1j * numpy.arange(n)[::-1]).astype(numpy.complex64)),
    ("complex128", lambda n: numpy.arange(n) * (0.5 - 2j)),
])
def test_int16_bool_and_complex_move_as_numpy(dtype, make):
    shape = (6, 5)
    whole = make(30).reshape(shape)
    src, dst = one_tensor("t", dtype, "dp=2", "S(0)", shape), one_tensor("t", dtype, "dp=3", "S(1)", shape)
    plan = shardalg.ModelReshardPlan(src, dst)
    sources = {r: src.scatter(r, {"t": whole}) for r in range(2)}
    destinations = {r: dst.local_buffers(r) for r in range(3)}
    assert destinations[0]["t"].dtype == whole.dtype
    shardalg.execute_local(plan, sources, destinations)
    numpy.testing.assert_array_equal(dst.gather(destinations)["t"], whole)


@pytest.mark.parametrize("dtype", ["bool", "complex64"])
def test_partial_of_a_type_without_arithmetic_is_refused(dtype):
    src, dst = one_tensor("t", dtype, "dp=2", "P(sum)", (4,)), one_tensor("t", dtype, "dp=2", "R", (4,))
    with pytest.raises(shardalg.Error, match=f"reductions of dtype '{dtype}' are not supported"):
        plan = shardalg.ModelReshardPlan(src, dst)
        shardalg.execute_local(plan, {r: {"t": src.local_buffers(r)["t"]} for r in range(2)},
                               {r: dst.local_buffers(r) for r in range(2)})
