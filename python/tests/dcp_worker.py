"""One rank of a PyTorch DCP scenario over gloo (test_checkpoints.py starts every rank):

  save FOLDER      torch saves ShardedTensors (ChunkShardingSpec on dim 0 and on dim 1 with uneven
                   sizes, 2-D blocks via EnumerableShardingSpec), a plain tensor and non-tensor
                   values, in fp32, bf16, fp16, int64, int16 and bool.
  load FOLDER      torch loads the checkpoint at this world size with every tensor ChunkShardingSpec
                   on dim 0; shardalg loads this rank's part under "fsdp dp=WORLD"; both must agree
                   element by element, and with the values saved.
  expect FOLDER    torch alone loads the checkpoint (written by shardalg) at this world size, every
                   tensor ChunkShardingSpec on dim 0, and the non-tensor values; each must equal
                   what the save scenario saved.
  convert FOLDER   the ranks share `Checkpoint.reshard` of FOLDER to FOLDER.converted at this world
                   size (shardalg.torch.agreement), then torch loads it as `expect` does.
  convert-damaged FOLDER   as convert, the last rank reading FOLDER.damaged: every rank must fail
                   with that rank's error and no output may be left.
  load-shared FOLDER   shardalg.torch.load_checkpoint replicated on every rank: each stored byte
                   read once in the job, every rank's tensors equal to the saved values; a
                   layout of more ranks than the group refused on every rank.
  load-shared-damaged FOLDER   as load-shared, the last rank reading FOLDER.damaged: every rank
                   fails naming it.

Usage: dcp_worker.py SCENARIO FOLDER RANK WORLD PORT. Exits non-zero with a message on any mismatch.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from torch_compat import import_torch_checkpointing  # noqa: E402

import_torch_checkpointing()
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.distributed._shard.checkpoint as dcp  # noqa: E402
from torch.distributed._shard import sharded_tensor  # noqa: E402
from torch.distributed._shard.sharding_spec import ChunkShardingSpec, EnumerableShardingSpec, ShardMetadata  # noqa: E402

# name -> (shape, dtype); values are expected_value(name) everywhere.
TENSORS = {
    "rows": ((10, 6), torch.float32),     # dim 0 over 4 ranks: 3, 3, 3, 1
    "cols": ((5, 7), torch.bfloat16),     # dim 1 over 4 ranks: 2, 2, 2, 1
    "blocks": ((6, 8), torch.float16),    # 2-D blocks: rows [0,4), [4,6) x cols [0,5), [5,8)
    "ids": ((9,), torch.int64),           # dim 0
    "plain": ((3, 4), torch.float32),     # a plain tensor (replicated on every rank)
    "flags": ((7, 3), torch.bool),        # dim 0: 2, 2, 2, 1
    "counts": ((11,), torch.int16),       # dim 0: 3, 3, 3, 2
}
VALUES = {"step": 7, "note": "saved by torch"}


def expected_value(name):
    shape, dtype = TENSORS[name]
    count = 1
    for extent in shape:
        count *= extent
    base = sum(map(ord, name)) % 17
    return (torch.arange(count, dtype=torch.float64) * 0.5 + base).reshape(shape).to(dtype)


def sharded(name, spec):
    shape, dtype = TENSORS[name]
    st = sharded_tensor.empty(spec, *shape, dtype=dtype)
    whole = expected_value(name)
    for shard in st.local_shards():
        index = tuple(slice(o, o + s) for o, s in zip(shard.metadata.shard_offsets, shard.metadata.shard_sizes))
        shard.tensor.copy_(whole[index])
    return st


def save(folder, rank, world):
    placements = [f"rank:{r}/cpu" for r in range(world)]
    blocks = EnumerableShardingSpec([
        ShardMetadata([0, 0], [4, 5], f"rank:{0}/cpu"), ShardMetadata([0, 5], [4, 3], f"rank:{1 % world}/cpu"),
        ShardMetadata([4, 0], [2, 5], f"rank:{2 % world}/cpu"), ShardMetadata([4, 5], [2, 3], f"rank:{3 % world}/cpu")])
    state = {
        "rows": sharded("rows", ChunkShardingSpec(dim=0, placements=placements)),
        "cols": sharded("cols", ChunkShardingSpec(dim=1, placements=placements)),
        "blocks": sharded("blocks", blocks),
        "ids": sharded("ids", ChunkShardingSpec(dim=0, placements=placements)),
        "flags": sharded("flags", ChunkShardingSpec(dim=0, placements=placements)),
        "counts": sharded("counts", ChunkShardingSpec(dim=0, placements=placements)),
        "plain": expected_value("plain"),
        **VALUES,
    }
    dcp.save_state_dict(state, dcp.FileSystemWriter(folder))


def load(folder, rank, world):
    import shardalg
    placements = [f"rank:{r}/cpu" for r in range(world)]
    state = {}
    for name, (shape, dtype) in TENSORS.items():
        state[name] = sharded_tensor.zeros(ChunkShardingSpec(dim=0, placements=placements), *shape, dtype=dtype)
    dcp.load_state_dict(state, dcp.FileSystemReader(folder))
    ck = shardalg.Checkpoint(folder)
    layout = shardalg.layout_model(ck.model(), f"fsdp dp={world}")
    ours = ck.load(layout, rank, like="torch")
    for name in TENSORS:
        local = state[name].local_shards()
        theirs = local[0].tensor if local else torch.zeros((0,) + TENSORS[name][0][1:], dtype=TENSORS[name][1])
        mine = ours[layout.buffer_of(name)]
        if mine.shape != theirs.shape or mine.dtype != theirs.dtype or not torch.equal(mine, theirs):
            raise SystemExit(f"rank {rank}: '{name}' differs: shardalg {mine.dtype} {tuple(mine.shape)} {mine.flatten()[:6]} "
                             f"torch {theirs.dtype} {tuple(theirs.shape)} {theirs.flatten()[:6]}")
        chunk = torch.chunk(expected_value(name), world, dim=0)
        wanted = chunk[rank] if rank < len(chunk) else theirs
        if not torch.equal(theirs, wanted):
            raise SystemExit(f"rank {rank}: torch loaded '{name}' differently from what was saved")


def expect(folder, rank, world):
    placements = [f"rank:{r}/cpu" for r in range(world)]
    state = {name: sharded_tensor.zeros(ChunkShardingSpec(dim=0, placements=placements), *shape, dtype=dtype)
             for name, (shape, dtype) in TENSORS.items()}
    state.update({name: None for name in VALUES})
    dcp.load_state_dict(state, dcp.FileSystemReader(folder))
    for name in TENSORS:
        chunks = torch.chunk(expected_value(name), world, dim=0)
        local = state[name].local_shards()
        if rank >= len(chunks):
            if local and local[0].tensor.numel():
                raise SystemExit(f"rank {rank}: '{name}' should hold nothing")
            continue
        if not local or not torch.equal(local[0].tensor, chunks[rank]):
            raise SystemExit(f"rank {rank}: '{name}' loaded by torch differs from what was saved")
    for name, value in VALUES.items():
        if state[name] != value:
            raise SystemExit(f"rank {rank}: value '{name}' is {state[name]!r}, saved {value!r}")


def convert(folder, rank, world):
    """The ranks share a conversion of FOLDER to FOLDER.converted at this world size (each writes
    the files its share gives it), then torch loads it as `expect` does."""
    import shardalg
    import shardalg.torch
    ck = shardalg.Checkpoint(folder)
    ck.reshard(folder + ".converted", shardalg.layout_model(ck.model(), f"fsdp dp={world}"),
               process=rank, processes=world, agree=shardalg.torch.agreement())
    expect(folder + ".converted", rank, world)


def convert_damaged(folder, rank, world):
    """As convert, but the last rank reads FOLDER.damaged (a file cut short): every rank must fail
    with that rank's error (the others naming its process) and leave no output."""
    import shardalg
    import shardalg.torch
    source = folder + ".damaged" if rank == world - 1 else folder
    ck = shardalg.Checkpoint(source)
    out = folder + ".failed"
    try:
        ck.reshard(out, shardalg.layout_model(ck.model(), f"fsdp dp={world}"), process=rank, processes=world,
                   agree=shardalg.torch.agreement())
    except shardalg.Error as e:
        message = str(e)
    else:
        raise SystemExit(f"rank {rank}: the reshard succeeded from a damaged source")
    if ".damaged" not in message or (source == folder and not message.startswith("process ")):
        raise SystemExit(f"rank {rank}: unexpected error: {message}")
    dist.barrier()
    if os.path.exists(out) or os.path.exists(os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".partial")):
        raise SystemExit(f"rank {rank}: a failed conversion left output")


def load_shared(folder, rank, world):
    """The ranks load the checkpoint replicated on every rank with shardalg.torch.load_checkpoint:
    each rank's tensors equal the saved values whole, and the job reads each stored byte once
    (the ranks' reads add up to the stored bytes), the rest arriving as forwards."""
    import shardalg
    import shardalg.torch
    ck = shardalg.Checkpoint(folder)
    try:
        shardalg.torch.load_checkpoint(ck, shardalg.layout_model(ck.model(), f"replicated ranks={world + 1}"))
    except shardalg.Error as e:
        if f"uses ranks 0..{world}; the group has {world}" not in str(e):
            raise SystemExit(f"rank {rank}: unexpected error: {e}")
    else:
        raise SystemExit(f"rank {rank}: a layout of {world + 1} ranks loaded on a group of {world}")
    layout = shardalg.layout_model(ck.model(), f"replicated ranks={world}")
    buffers, stats = shardalg.torch.load_checkpoint(ck, layout, threads=2)
    for name in TENSORS:
        if not torch.equal(buffers[layout.buffer_of(name)], expected_value(name)):
            raise SystemExit(f"rank {rank}: '{name}' loaded with forwards differs from what was saved")
    totals = torch.tensor([stats["bytes_read"], stats["bytes_sent"], stats["bytes_received"]], dtype=torch.int64)
    dist.all_reduce(totals)
    stored = ck.inspect()["bytes"]
    if totals[0].item() != stored or totals[1].item() != totals[2].item() or totals[1].item() < (world - 1) * stored:
        raise SystemExit(f"rank {rank}: read {totals[0].item()} of {stored} stored bytes, sent {totals[1].item()}, received {totals[2].item()}")


def load_shared_damaged(folder, rank, world):
    """As load-shared, but the last rank opens FOLDER.damaged (a file cut short): every rank must
    fail with an error naming that rank and the damaged file, and none may hang."""
    import shardalg
    import shardalg.torch
    source = folder + ".damaged" if rank == world - 1 else folder
    ck = shardalg.Checkpoint(source)
    try:
        shardalg.torch.load_checkpoint(ck, shardalg.layout_model(ck.model(), f"replicated ranks={world}"), timeout=60)
    except shardalg.Error as e:
        message = str(e)
    else:
        raise SystemExit(f"rank {rank}: the load succeeded from a damaged file")
    if f"load_checkpoint: rank {world - 1} failed its checks" not in message or ".damaged" not in message:
        raise SystemExit(f"rank {rank}: unexpected error: {message}")


def main():
    scenario, folder, rank, world, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", port
    from datetime import timedelta
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    scenarios = {"save": save, "load": load, "expect": expect, "convert": convert, "convert-damaged": convert_damaged,
                 "load-shared": load_shared, "load-shared-damaged": load_shared_damaged}
    scenarios[scenario](folder, rank, world)
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: {scenario} ok")


if __name__ == "__main__":
    main()
