"""Models, recipes, plans as numpy columns, summaries, verification, lowering, relabeling."""

import itertools
import json

import numpy
import pytest

import shardalg


def test_models_from_the_zoo_and_from_files(tmp_path):
    model = shardalg.model_from_zoo("llama3-8b", scale_down=16)
    assert model.tensors[0].shape == (8016, 256)
    assert {t.role for t in model.tensors} >= {"column_parallel", "row_parallel", "replicated"}
    assert eval(repr(model.tensors[0]), {"shardalg": shardalg}) == model.tensors[0]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"name": "tiny", "tensors": [{"name": "w", "shape": [4, 6], "dtype": "fp32", "role": "column_parallel"}]}))
    tiny = shardalg.load_model(str(path))
    assert tiny.name == "tiny" and tiny.tensors[0].dtype == "fp32"
    path.write_text('{"tensors": [{"name": "w", "shape": [4, -6]}]}')
    with pytest.raises(shardalg.Error, match="-6"):
        shardalg.load_model(str(path))
    with pytest.raises(shardalg.Error, match="llama9"):
        shardalg.model_from_zoo("llama9")


def test_plan_parts_are_the_global_plan():
    model = shardalg.model_from_zoo("llama3-8b", scale_down=16)
    plan = shardalg.ModelReshardPlan(shardalg.layout_model(model, "fsdp-tp dp=4,tp=2"), shardalg.layout_model(model, "zero3 dp=6"))
    everything = plan.all_transfers()
    parts = [plan.transfers_to(r) for r in range(8)]
    assert sum(len(p) for p in parts) == len(everything)
    for r, part in enumerate(parts):
        assert (part.dst_rank == r).all()
    assert everything.volume.sum() == numpy.sum([p.volume.sum() for p in parts])
    assert everything.offset.shape == (len(everything), 2)
    first = everything[0]
    assert (first.src_rank, first.dst_rank) == (everything.src_rank[0], everything.dst_rank[0])
    summary = plan.summary(everything)
    assert plan.summary() == summary  # counted rank by rank, never listed: the same totals
    assert summary["transfers"] == len(everything)
    assert summary["bytes_moved"] + summary["bytes_local"] == 2 * everything.volume.sum()  # bf16
    shardalg.verify_plan(plan, everything)


def test_verify_plan_rejects_a_plan_with_a_transfer_missing():
    model = shardalg.model_from_zoo("llama3-8b", scale_down=64).select(["model.norm.weight"])
    plan = shardalg.ModelReshardPlan(shardalg.layout_model(model, "fsdp dp=2"), shardalg.layout_model(model, "replicated ranks=2"))
    shardalg.verify_plan(plan)
    one_rank_only = plan.transfers_to(0)
    with pytest.raises(shardalg.Error):
        shardalg.verify_plan(plan, one_rank_only)
    shardalg.verify_destination(plan, 0, one_rank_only)
    with pytest.raises(shardalg.Error, match="rank 1"):
        shardalg.verify_destination(plan, 0, plan.transfers_to(1))  # another rank's part
    with pytest.raises(shardalg.Error, match="receives"):
        shardalg.verify_destination(plan, 1, plan.transfers_to(99))  # nothing, where the rank holds elements


def test_plans_between_mismatched_models_are_refused():
    a = shardalg.model_from_zoo("llama3-8b", scale_down=64)
    b = shardalg.model_from_zoo("llama3-70b", scale_down=64)
    with pytest.raises(shardalg.Error, match="tensor"):
        shardalg.ModelReshardPlan(shardalg.layout_model(a, "fsdp dp=2"), shardalg.layout_model(b, "fsdp dp=2"))


def test_lowering_and_relabeling():
    src = shardalg.MeshLayout.parse("dp=4,tp=2", "P,P", (4096, 4096))
    dst = shardalg.MeshLayout.parse("dp=4,tp=2", "S(0),S(0)", (4096, 4096))
    lowered = shardalg.lower_reshard(src, dst, 2)
    assert lowered.choice == "collectives"
    assert [s.kind for s in lowered.collectives.steps] == ["reduce_scatter"]
    other_mesh = shardalg.lower_reshard(shardalg.MeshLayout.parse("dp=4", "S(0)", (64, 4)), shardalg.MeshLayout.parse("dp=2", "S(0)", (64, 4)), 4)
    assert other_mesh.choice == "p2p" and "mesh" in other_mesh.reason
    model = shardalg.model_from_zoo("llama3-8b", scale_down=64)
    plan = shardalg.ModelReshardPlan(shardalg.layout_model(model, "fsdp dp=4"),
                                     shardalg.ModelLayout([(t.name, t.dtype, shardalg.MeshLayout(shardalg.DeviceMesh(["dp"], (4,), [3, 2, 1, 0]), "S(0)", t.shape)) for t in model.tensors]))
    relabeling = shardalg.relabel_destination(plan)
    assert relabeling.moved_after <= relabeling.moved_before
    assert relabeling.moved_after == 0 and relabeling.exact


@pytest.mark.parametrize("src, dst, shape", [
    (("dp=2", "S(0)"), ("dp=3", "S(0)"), (6, 4)),
    (("dp=2,tp=2", "R,S(1)"), ("dp=4", "S(0)"), (5, 6)),   # replicas saved once
    (("ep=4", "S(0)"), ("ep=2,dp=2", "S(0),R"), (16, 3)),  # an EP checkpoint at another EP size
    (("dp=3,tp=2", "_S(0,2),S(0)"), ("tp=2", "S(1)"), (7, 4)),
])
def test_dcp_read_items_fill_every_destination_element_once_from_saved_chunks(src, dst, shape):
    source = shardalg.MeshLayout.parse(src[0], src[1], shape)
    destination = shardalg.MeshLayout.parse(dst[0], dst[1], shape)
    plan = shardalg.ModelReshardPlan(shardalg.ModelLayout([("w", "fp32", source)]),
                                     shardalg.ModelLayout([("w", "fp32", destination)]))
    items = shardalg.dcp_read_items(plan)
    # The chunks DCP saves: each distinct non-empty tile once, in the file of the first rank holding it.
    saved = {}
    for rank in sorted(source.mesh.devices):
        tile = source.tile(rank)
        if tile.empty():
            continue
        for runs in itertools.product(*tile.ranges()):  # the tile's boxes: one run per dim
            box = (tuple(begin for begin, _ in runs), tuple(end - begin for begin, end in runs))
            saved.setdefault(box, f"__{rank}_0.distcp")
    for rank in destination.mesh.devices:
        count = numpy.zeros(shape, dtype=int)
        mine = [i for i in items if i["rank"] == rank]
        assert mine == shardalg.dcp_read_items(plan, rank=rank)
        for item in mine:
            chunk = (tuple(item["storage_chunk_offsets"]), tuple(item["storage_chunk_sizes"]))
            assert saved[chunk] == item["file"]
            start = [c + o for c, o in zip(item["storage_chunk_offsets"], item["storage_offsets"])]
            assert start == [c + o for c, o in zip(item["dest_chunk_offsets"], item["dest_offsets"])]
            for o, n, size in zip(item["storage_offsets"], item["lengths"], item["storage_chunk_sizes"]):
                assert 0 <= o and o + n <= size  # inside the saved chunk
            count[tuple(slice(s, s + n) for s, n in zip(start, item["lengths"]))] += 1
        held = numpy.zeros(shape, dtype=int)
        held[numpy.ix_(*destination.tile(rank).index_arrays())] = 1
        assert (count == held).all()  # every element the rank holds, read exactly once
    with pytest.raises(shardalg.Error, match="rank 9 is not a rank of the destination"):
        shardalg.dcp_read_items(plan, rank=9)
