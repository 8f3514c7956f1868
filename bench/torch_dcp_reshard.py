"""The peer of reshard_bench.py: PyTorch's own way to reshard a DCP checkpoint, loading it at the
new world size (every tensor a ShardedTensor, ChunkShardingSpec on dim 0, over gloo ranks) and
saving it again (FileSystemWriter, files synced as by default).

Usage: torch_dcp_reshard.py SOURCE DESTINATION WORLD
Prints the in-process seconds of load + save (rank 0, between barriers) as its last word.
"""
import os
import pickle
import socket
import sys
import time

import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_compat import import_torch_checkpointing  # noqa: E402


def rank_main(rank, world, port, source, destination, result):
    import_torch_checkpointing()
    import torch
    import torch.distributed as dist
    import torch.distributed._shard.checkpoint as dcp
    from torch.distributed._shard import sharded_tensor
    from torch.distributed._shard.sharding_spec import ChunkShardingSpec
    from datetime import timedelta
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=600))
    with open(os.path.join(source, ".metadata"), "rb") as f:
        metadata = pickle.load(f)  # torch's own reading of its own format (the peer)
    spec = ChunkShardingSpec(dim=0, placements=[f"rank:{r}/cpu" for r in range(world)])
    # Sharded on dim 0; scalars (Adam's step) are plain tensors, whole on every rank.
    state = {name: sharded_tensor.empty(spec, *md.size, dtype=md.properties.dtype) if len(md.size) else torch.empty((), dtype=md.properties.dtype)
             for name, md in metadata.state_dict_metadata.items() if hasattr(md, "chunks")}
    dist.barrier()
    start = time.perf_counter()
    dcp.load_state_dict(state, dcp.FileSystemReader(source))
    dcp.save_state_dict(state, dcp.FileSystemWriter(destination))
    dist.barrier()
    if rank == 0:
        result.value = time.perf_counter() - start
    dist.destroy_process_group()


def main():
    source, destination, world = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = mp.get_context("spawn").Value("d", 0.0)
    mp.start_processes(rank_main, args=(world, port, source, destination, result), nprocs=world, start_method="spawn")
    print(f"torch load+save seconds {result.value:.4f}")


if __name__ == "__main__":
    main()
