"""A Llama-3-405B-shaped PyTorch DCP `.metadata` at 1,024 ranks, made by torch's own record types
(FSDP: every tensor Shard(0) over the ranks, torch.chunk sizes, one chunk per rank that holds
rows, each rank's items in its own __RANK_0.distcp, whose name they share), with no data files.
Then, in one run, alternating, each in a fresh process after a pause: Python's pickle.load of it,
and shardalg's parse and per-rank read plan (bench/checkpoint_bench).

    /usr/bin/python3 bench/dcp_405b_metadata.py BUILD_DIR [FOLDER] [RANKS] [ROUNDS]
"""
import os
import pickle
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from torch_compat import import_torch_checkpointing  # noqa: E402

_, md = import_torch_checkpointing()
import torch  # noqa: E402
try:
    from torch.distributed.checkpoint.filesystem import _StorageInfo
except ImportError:
    from torch.distributed._shard.checkpoint.filesystem import _StorageInfo
try:
    from torch.distributed.checkpoint.metadata import TensorProperties
except ImportError:
    from torch.distributed._shard.sharded_tensor.metadata import TensorProperties


def make(folder, ranks, build):
    sys.path.insert(0, os.path.join(build, "python"))
    import shardalg
    model = shardalg.model_from_zoo("llama3-405b", 1)
    state, storage = {}, {}
    # One name per rank's file, shared by all its items, as torch's FileSystemWriter records them
    # (pickled once, then referenced).
    file_names = [f"__{r}_0.distcp" for r in range(ranks)]
    for t in model.tensors:
        rows = t.shape[0]
        step = -(-rows // ranks)
        chunks, rest = [], tuple(t.shape[1:])
        row_bytes = 2
        for extent in rest:
            row_bytes *= extent
        for r in range(ranks):
            begin = min(rows, r * step)
            end = min(rows, begin + step)
            if begin == end:
                continue
            offsets = torch.Size((begin,) + (0,) * len(rest))
            chunks.append(md.ChunkStorageMetadata(offsets=offsets, sizes=torch.Size((end - begin,) + rest)))
            storage[md.MetadataIndex(t.name, offsets, len(chunks) - 1)] = _StorageInfo(file_names[r], 0, (end - begin) * row_bytes + 1024)
        state[t.name] = md.TensorStorageMetadata(properties=TensorProperties(dtype=torch.bfloat16), size=torch.Size(t.shape), chunks=chunks)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(md.Metadata(state_dict_metadata=state, storage_data=storage), f)


# This VM hands freed memory back to its host within seconds (virtio free page reporting), and a
# program that starts while that is under way, just after the other one freed gigabytes, runs up
# to twice as slow, whichever it is. Each measurement starts after a pause and in a fresh process.
SETTLE_SECONDS = 5

PICKLE_LOAD = """
import pickle, resource, sys, time
sys.path.insert(0, sys.argv[2])
from torch_compat import import_torch_checkpointing
import_torch_checkpointing()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    pickle.load(f)
seconds = time.perf_counter() - start
print(seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def main():
    build = sys.argv[1]
    folder = sys.argv[2] if len(sys.argv) > 2 else "/tmp/shardalg_405b_dcp"
    ranks = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    path = os.path.join(folder, ".metadata")
    if not os.path.exists(path):
        start = time.perf_counter()
        make(folder, ranks, build)
        print(f"made {path} ({os.path.getsize(path) / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
    ratios = []
    for round in range(rounds):
        time.sleep(SETTLE_SECONDS)
        seconds, rss = (float(v) for v in subprocess.run([sys.executable, "-c", PICKLE_LOAD, path, os.path.dirname(os.path.abspath(__file__))],
                                                         capture_output=True, text=True, check=True).stdout.split())
        print(f"round {round + 1}: python pickle.load: {seconds:.2f} s, peak RSS +{rss:.0f} MB")
        time.sleep(SETTLE_SECONDS)
        out = subprocess.run([os.path.join(build, "bench", "checkpoint_bench"), "metadata", folder, str(ranks)],
                             capture_output=True, text=True, check=True).stdout
        print("".join(f"  {line}\n" for line in out.splitlines() if round == 0 or not line.startswith(("planner", "rank_plan"))), end="")
        parse = float(next(line.split()[1] for line in out.splitlines() if line.startswith("parse_seconds")))
        ratios.append(seconds / parse)
        print(f"  speedup over pickle.load: {ratios[-1]:.1f}x")
    print(f"speedup over pickle.load, median of {rounds} rounds: {sorted(ratios)[len(ratios) // 2]:.1f}x")


if __name__ == "__main__":
    main()
