#!/usr/bin/python3
"""PyTorch DCP's own read planning on the case `shardalg plan --summary` answers (the peer of
plan_bench's BM_OneTensorPlan): a [16384, 8192] tensor saved as S(0) over 1,024 ranks (1,024
chunks of [16, 8192]), loaded as S(0),S(1) over a 48 x 32 mesh. For every one of the 1,536
loading ranks, DCP's planner helper pairs the rank's wanted chunk with every saved chunk
(torch.distributed[._shard].checkpoint.planner_helpers._create_sharded_read_items, what
DefaultLoadPlanner runs per rank). Prints the read items found and the planning time.

Run with the interpreter that has torch (Debian's python3-torch: /usr/bin/python3); compare the
whole process with `hyperfine` against `shardalg plan ... --summary` (docs/benchmarks.md).
"""
import sys
import time
import types

import torch

from torch_compat import import_torch_checkpointing

planner_helpers, metadata = import_torch_checkpointing()
from torch.distributed._shard.metadata import ShardMetadata  # noqa: E402 (after the compat import)

ROWS, COLS = 16384, 8192
SAVED_RANKS = 1024
LOAD_MESH = (48, 32)


def chunk(n, k, r):
    """torch.chunk's (offset, size) of piece r of n split k ways (docs/semantics.md section 1)."""
    c = -(-n // k)
    start = min(r * c, n)
    return start, max(0, min(n, start + c) - start)


def main():
    rows_per_rank = ROWS // SAVED_RANKS
    saved = metadata.TensorStorageMetadata(
        properties=metadata.TensorProperties(dtype=torch.float32),
        size=torch.Size([ROWS, COLS]),
        chunks=[
            metadata.ChunkStorageMetadata(offsets=torch.Size([r * rows_per_rank, 0]), sizes=torch.Size([rows_per_rank, COLS]))
            for r in range(SAVED_RANKS)
        ],
    )
    start = time.perf_counter()
    items = 0
    for a in range(LOAD_MESH[0]):
        row_offset, row_size = chunk(ROWS, LOAD_MESH[0], a)
        for b in range(LOAD_MESH[1]):
            col_offset, col_size = chunk(COLS, LOAD_MESH[1], b)
            # The helper reads only each local shard's metadata.
            wanted = types.SimpleNamespace(
                metadata=ShardMetadata(shard_offsets=[row_offset, col_offset], shard_sizes=[row_size, col_size], placement=None)
            )
            items += len(planner_helpers._create_sharded_read_items("weight", saved, [wanted]))
    seconds = time.perf_counter() - start
    print(f"torch {torch.__version__}: {items} read items for {LOAD_MESH[0] * LOAD_MESH[1]} ranks in {seconds * 1e3:.1f} ms")
    return 0 if items == 34112 else 1


if __name__ == "__main__":
    sys.exit(main())
