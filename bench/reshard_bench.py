"""Checkpoint conversion at the speed of the disk (numbers in docs/benchmarks.md).

Makes a checkpoint of a built-in model's shapes scaled down (bf16 parameters, with --optimizer adam
also Adam's fp32 master, exp_avg, exp_avg_sq and step per parameter; values are a pattern: speed
does not depend on them), saved as DCP at 8 ranks ("fsdp dp=8") by shardalg, then times, in the
same run and on the same file system:

  shardalg   `shardalg checkpoint reshard SRC DST --layout "fsdp dp=6"` (the whole process;
             files synced before the rename, as DCP syncs them), and its peak RSS;
  cp         `cp -r SRC COPY && sync` of the same files;
  consolidate `shardalg checkpoint consolidate SRC HF` (Hugging Face safetensors);
  mpirun     with --processes K: the same reshard by `mpirun -np K shardalg ...` (the destination
             files divided among K processes);
  torch      with --torch: PyTorch's own reshard (bench/torch_dcp_reshard.py: load at 6 gloo ranks,
             then save), its in-process time.

Usage: reshard_bench.py SHARDALG FOLDER [--model llama3-8b] [--scale 2] [--optimizer none|adam]
                        [--repeat 3] [--memory-limit 256MiB] [--threads 4] [--processes K] [--torch]
FOLDER is where the checkpoints go (a disk path, or /dev/shm/... for tmpfs); it is emptied.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy


def run(command, env=None):
    """(seconds, peak RSS MiB) of a command run to completion; raises on failure."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    out, err = process.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.decode()}{err.decode()}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def make_source(shardalg, model, scale, optimizer, root):
    """A safetensors file of the model's state, resharded by shardalg to DCP at 8 ranks."""
    import shardalg as lib  # the Python package, for the model's shapes and states
    tensors = lib.model_from_zoo(model, scale_down=scale, optimizer=optimizer).tensors
    flat = os.path.join(root, "flat")
    os.makedirs(flat)
    header, at = {}, 0
    for t in tensors:
        size = (int(numpy.prod(t.shape)) if len(t.shape) else 1) * lib.element_bytes(t.dtype)
        header[t.name] = {"dtype": {"bf16": "BF16", "fp32": "F32"}[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + size]}
        at += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(flat, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        block = (numpy.arange(1 << 22, dtype=numpy.uint16) * 7).tobytes()
        left = at
        while left > 0:
            f.write(block[:min(left, len(block))])
            left -= min(left, len(block))
    source = os.path.join(root, "dcp8")
    run([shardalg, "checkpoint", "reshard", flat, source, "--layout", "fsdp dp=8", "--torch", "1.13", "--quiet"])
    shutil.rmtree(flat)
    return source, at


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("shardalg")
    parser.add_argument("folder")
    parser.add_argument("--model", default="llama3-8b")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--optimizer", default="none", choices=["none", "adam"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-limit", default="256MiB")
    parser.add_argument("--threads", default="4")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    os.makedirs(args.folder)
    source, data = make_source(args.shardalg, args.model, args.scale, args.optimizer, args.folder)
    size = folder_bytes(source)
    state = "bf16 weights" if args.optimizer == "none" else "bf16 weights + fp32 Adam state"
    print(f"source: {args.model} / {args.scale}, {data / 1e9:.2f} GB of {state}, DCP at 8 ranks ({size / 1e9:.2f} GB) in {args.folder}")
    results = {"shardalg": [], "cp": [], "consolidate": [], "rss": [], "mpi": []}
    for _ in range(args.repeat):
        out = os.path.join(args.folder, "dcp6")
        seconds, rss, _ = run([args.shardalg, "checkpoint", "reshard", source, out, "--layout", "fsdp dp=6", "--quiet",
                               "--memory-limit", args.memory_limit, "--threads", args.threads])
        results["shardalg"].append(seconds)
        results["rss"].append(rss)
        shutil.rmtree(out)
        if args.processes > 1:
            mpirun = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
            results["mpi"].append(run(mpirun + ["-np", str(args.processes), args.shardalg, "checkpoint", "reshard", source, out,
                                                "--layout", "fsdp dp=6", "--quiet", "--memory-limit", args.memory_limit,
                                                "--threads", args.threads])[0])
            shutil.rmtree(out)
        copy = os.path.join(args.folder, "copy")
        results["cp"].append(run(["sh", "-c", f"cp -r '{source}' '{copy}' && sync"])[0])
        shutil.rmtree(copy)
        hf = os.path.join(args.folder, "hf")
        results["consolidate"].append(run([args.shardalg, "checkpoint", "consolidate", source, hf, "--quiet",
                                           "--memory-limit", args.memory_limit, "--threads", args.threads])[0])
        shutil.rmtree(hf)
    best = {k: min(v) for k, v in results.items() if k != "rss" and v}
    print(f"shardalg reshard dp=8 -> dp=6: best {best['shardalg']:.2f} s of {results['shardalg']}, "
          f"{size / best['shardalg'] / 1e9:.2f} GB/s, peak RSS {max(results['rss']):.0f} MiB (limit {args.memory_limit})")
    print(f"cp -r + sync:                   best {best['cp']:.2f} s of {results['cp']}, {size / best['cp'] / 1e9:.2f} GB/s")
    print(f"shardalg consolidate:           best {best['consolidate']:.2f} s of {results['consolidate']}, "
          f"{size / best['consolidate'] / 1e9:.2f} GB/s")
    if args.processes > 1:
        print(f"mpirun -np {args.processes} shardalg reshard:  best {best['mpi']:.2f} s of {results['mpi']}, "
              f"{size / best['mpi'] / 1e9:.2f} GB/s ({best['cp'] / best['mpi']:.2f}x cp)")
    print(f"reshard throughput / cp: {best['cp'] / best['shardalg']:.2f}x; consolidate / cp: {best['cp'] / best['consolidate']:.2f}x")
    if args.torch:
        peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_dcp_reshard.py")
        out = os.path.join(args.folder, "torch6")
        seconds, _, text = run([sys.executable, peer, source, out, "6"])
        torch_seconds = float(text.split()[-1])
        print(f"torch 1.13 DCP load at 6 ranks + save: {torch_seconds:.2f} s in process ({seconds:.2f} s with start-up); "
              f"shardalg whole process is {torch_seconds / best['shardalg']:.1f}x faster")
        shutil.rmtree(out)
    shutil.rmtree(args.folder)


if __name__ == "__main__":
    main()
