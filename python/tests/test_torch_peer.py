"""Against the real PyTorch installed from Debian (1.13): slices equal torch.chunk composition,
bf16 and fp16 buffers move through torch, torch placement objects convert."""

import numpy
import pytest
from hypothesis import given, settings, strategies as st

import shardalg

torch = pytest.importorskip("torch")


def chunk_composition(tensor, mesh, placements, coordinate):
    """What PyTorch's DTensor gives the rank at `coordinate` for Shard placements applied left
    to right: torch.chunk along each placement's dim, taking the coordinate's chunk (ranks past
    the last chunk hold an empty shard)."""
    for size, placement, c in zip(mesh.shape, placements, coordinate):
        if not placement.is_shard():
            continue
        chunks = torch.chunk(tensor, size, dim=placement.dim)
        if c < len(chunks):
            tensor = chunks[c]
        else:
            empty = list(tensor.shape)
            empty[placement.dim] = 0
            tensor = tensor.new_empty(empty)
    return tensor


def local_tile(layout, rank, whole):
    tile = layout.tile(rank)
    return whole[numpy.ix_(*tile.index_arrays())] if tile.volume() else None


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_shard_slices_equal_torch_chunk_composition(data):
    ndim = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.lists(st.integers(0, 11), min_size=ndim, max_size=ndim)))
    mesh_shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    mesh = shardalg.DeviceMesh(["a", "b", "c"][:len(mesh_shape)], mesh_shape)
    placements = [data.draw(st.sampled_from(["R"] + [f"S({d})" for d in range(ndim)])) for _ in mesh_shape]
    layout = shardalg.MeshLayout(mesh, ",".join(placements), shape)
    whole = torch.arange(int(numpy.prod(shape)), dtype=torch.int64).reshape(shape)
    for rank in mesh.devices:
        expected = chunk_composition(whole, mesh, layout.placements, mesh.coordinate_of(rank))
        assert tuple(expected.shape) == layout.shard_info(rank).local_shape
        got = local_tile(layout, rank, whole.numpy())
        if expected.numel():
            assert numpy.array_equal(got, expected.numpy())


@pytest.mark.parametrize("n,tp,dp", [(16, 2, 4), (14336 // 64, 2, 4), (24, 4, 2)])
def test_fsdp2_over_tp_label_holds_chunk_of_chunk(n, tp, dp):
    """FSDP2 over TP on dim 0: rank (d, t) holds chunk(chunk(x, T)[t], D)[d]; the label
    (_S(0, T), S(0)) says the same where the sizes divide evenly."""
    whole = torch.arange(n * 3).reshape(n, 3)
    layout = shardalg.MeshLayout.parse(f"dp={dp},tp={tp}", f"_S(0,{tp}),S(0)", (n, 3))
    for rank in layout.mesh.devices:
        d, t = layout.mesh.coordinate_of(rank)
        expected = torch.chunk(torch.chunk(whole, tp)[t], dp)[d]
        assert numpy.array_equal(local_tile(layout, rank, whole.numpy()), expected.numpy())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_execute_local_moves_bf16_and_fp16_through_torch(dtype):
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    model = shardalg.model_from_zoo("llama3-8b", scale_down=32).with_dtype(name)
    src = shardalg.layout_model(model, "zero3 dp=4")
    dst = shardalg.layout_model(model, "fsdp-tp dp=2,tp=2")
    whole = {t.name: torch.randn(t.shape).to(dtype) for t in model.tensors}
    sources = {r: src.scatter(r, whole) for r in src.ranks}
    assert all(isinstance(b, torch.Tensor) for b in sources[0].values())
    destinations = {r: dst.local_buffers(r, like=torch) for r in dst.ranks}
    shardalg.execute_local(shardalg.ModelReshardPlan(src, dst), sources, destinations)
    back = dst.gather(destinations)
    for k, v in whole.items():
        assert torch.equal(back[k], v)


def test_tensors_that_would_be_copied_or_written_wrongly_are_refused():
    layout = shardalg.ModelLayout([("w", "fp32", shardalg.MeshLayout.parse("dp=2", "S(0)", (4, 4)))])
    with pytest.raises(shardalg.Error, match="contiguous"):
        layout.scatter(0, {"w": torch.zeros(4, 4).t()})
    with pytest.raises(shardalg.Error, match="requires grad"):
        shardalg.execute_local(shardalg.ModelReshardPlan(layout, layout), {0: {"w": torch.zeros(2, 4)}, 1: {"w": torch.zeros(2, 4)}},
                               {0: {"w": torch.zeros(2, 4, requires_grad=True)}, 1: {"w": torch.zeros(2, 4)}})


def test_torch_placement_objects_convert():
    tensor_module = None
    for path in ("torch.distributed.tensor", "torch.distributed._tensor"):
        try:
            tensor_module = __import__(path, fromlist=["Shard"])
            break
        except Exception:  # not in this torch (1.13 on Python 3.11 may lack it)
            continue
    if tensor_module is None or not hasattr(tensor_module, "Shard"):
        pytest.skip("this torch has no DTensor placement classes")
    assert shardalg.Placement.from_torch(tensor_module.Shard(1)) == shardalg.Placement.shard(1)
    assert shardalg.Placement.from_torch(tensor_module.Replicate()) == shardalg.Placement.replicate()
