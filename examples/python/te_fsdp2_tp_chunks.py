"""TransformerEngine-style FSDP2 over TP: a column-parallel weight split by TP first, then by FSDP2
inside each TP chunk, on a mesh larger than the rows of a small tensor, so some shards are
empty. shardalg's tiles equal torch.chunk(torch.chunk(w, T)[t], D)[d] on every rank, and its
label (_S(0, T), S(0)) is compared with those bytes."""

import numpy

import shardalg

DP, TP = 4, 2
mesh = shardalg.DeviceMesh.parse(f"dp={DP},tp={TP}")

for rows in (64, 6):  # 6 rows: chunk(6, 2) = 3 + 3, then chunk(3, 4) = 1 + 1 + 1 + empty
    shape = (rows, 16)
    physical = shardalg.fsdp_over_tp_physical(mesh, "dp", "tp", shape)
    label = shardalg.fsdp_over_tp_label(mesh, "dp", "tp", shape)
    whole = numpy.arange(rows * 16).reshape(shape)
    empty = []
    for rank in mesh.devices:
        d, t = mesh.coordinate_of(rank)
        tp_chunk = numpy.array_split(whole, [(i + 1) * -(-rows // TP) for i in range(TP - 1)])[t]
        step = -(-len(tp_chunk) // DP)
        expected = tp_chunk[d * step:(d + 1) * step]
        tile = physical.tile(rank)
        got = whole[numpy.ix_(*tile.index_arrays())] if tile.volume() else whole[0:0]
        assert numpy.array_equal(got, expected), (rank, got, expected)
        if tile.volume() == 0:
            empty.append(rank)
    same = shardalg.compare_layouts(physical, label).equivalent()
    print(f"rows={rows}: empty shards on ranks {empty}; the label {'matches' if same else 'does NOT match'} the bytes")
    assert (rows == 6) == bool(empty)
print("ok")
