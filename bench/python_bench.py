"""The Python package's speed targets, each against its peer in the same run:

  plan   one rank's plan of Llama-3-405B `fsdp dp=512` -> `fsdp dp=1024` from Python vs the same
         call in C++ (bench/plan_bench's BM_OneRankModelPlan/0/1024), target: within 1.5x
  local  execute_local of Llama-3-8B shapes (scaled down 16x, bf16) `zero3 dp=4` -> `fsdp-tp
         dp=2,tp=2` vs one torch copy_ of the same number of bytes, target: at least 0.8x its speed
  torch  shardalg.torch.reshard of that plan on 4 gloo processes vs all_to_all_single moving the
         same byte matrix (each rank's bytes per peer, and its local copies on the diagonal),
         target: at least 0.8x its speed

    PYTHONPATH=build/default/python python3 bench/python_bench.py [plan|local|torch ...] [--build build/default]
"""

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time


def best_of(function, repeats):
    """Median seconds of `repeats` calls, after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_plan(build):
    import shardalg
    model = shardalg.model_from_zoo("llama3-405b")
    plan = shardalg.ModelReshardPlan(shardalg.layout_model(model, "fsdp dp=512"), shardalg.layout_model(model, "fsdp dp=1024"))
    ranks = plan.destination.ranks
    state = {"next": 0}

    def one_rank():
        plan.transfers_to(ranks[state["next"]])
        state["next"] = (state["next"] + 97) % len(ranks)

    python_s = best_of(one_rank, 200)
    out = subprocess.run([os.path.join(build, "bench", "plan_bench"), "--benchmark_filter=BM_OneRankModelPlan/0/1024$",
                          "--benchmark_format=json"], capture_output=True, text=True, check=True).stdout
    cpp_s = json.loads(out)["benchmarks"][0]["real_time"] / 1e3  # reported in ms
    print(f"plan   one rank, 405B fsdp 512 -> 1024: Python {python_s * 1e3:.3f} ms, C++ {cpp_s * 1e3:.3f} ms, "
          f"ratio {python_s / cpp_s:.2f} (target <= 1.5)")
    return {"python_ms": python_s * 1e3, "cpp_ms": cpp_s * 1e3}


def llama_plan():
    import shardalg
    model = shardalg.model_from_zoo("llama3-8b", scale_down=16)
    src, dst = shardalg.layout_model(model, "zero3 dp=4"), shardalg.layout_model(model, "fsdp-tp dp=2,tp=2")
    return model, src, dst, shardalg.ModelReshardPlan(src, dst)


def bench_local():
    import torch
    import shardalg
    model, src, dst, plan = llama_plan()
    whole = {t.name: torch.randn(t.shape).to(torch.bfloat16) for t in model.tensors}
    sources = {r: src.scatter(r, whole) for r in src.ranks}
    destinations = {r: dst.local_buffers(r, like=torch) for r in dst.ranks}
    stats = shardalg.execute_local(plan, sources, destinations)
    moved = stats["bytes_received"] + stats["bytes_local"]
    bound = shardalg.LocalExecution(plan).bind(sources, destinations)  # once, as a framework resharding every step would
    local_s = best_of(bound.run, 10)
    a = torch.empty(moved, dtype=torch.uint8).random_()
    b = torch.empty(moved, dtype=torch.uint8)
    copy_s = best_of(lambda: b.copy_(a), 10)
    print(f"local  execute_local {moved / 1e6:.1f} MB: {local_s * 1e3:.2f} ms ({moved / local_s / 1e9:.2f} GB/s); "
          f"torch copy_ {copy_s * 1e3:.2f} ms ({moved / copy_s / 1e9:.2f} GB/s); speed ratio {copy_s / local_s:.2f} (target >= 0.8)")
    return {"bytes": moved, "execute_local_ms": local_s * 1e3, "torch_copy_ms": copy_s * 1e3}


def torch_worker(rank, world, port, repeats):
    import torch
    import torch.distributed as dist
    import shardalg
    import shardalg.torch
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    model, src, dst, plan = llama_plan()
    whole = {t.name: torch.randn(t.shape, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16) for t in model.tensors}
    sources, destinations = src.scatter(rank, whole), dst.local_buffers(rank, like=torch)
    part = shardalg.RankPart(plan, rank)
    send = [0] * world
    receive = [0] * world
    for peer, size in part.sends:
        send[peer] = size
    for peer, size in part.receives:
        receive[peer] = size
    send[rank] = receive[rank] = part.local_bytes()  # reshard copies these within the rank: so does all_to_all_single
    a2a_in = torch.empty(sum(send), dtype=torch.uint8)
    a2a_out = torch.empty(sum(receive), dtype=torch.uint8)

    prepared = shardalg.torch.prepare(plan, sources, destinations, part=part, timeout=120)  # once, as a training loop would
    tensor_ops = shardalg.torch.prepare(plan, sources, destinations, part=part, timeout=120, executor="tensor")

    def reshard():
        dist.barrier()
        prepared.run()

    def reshard_tensor_ops():
        dist.barrier()
        tensor_ops.run()

    def all_to_all():
        dist.barrier()
        dist.all_to_all_single(a2a_out, a2a_in, output_split_sizes=receive, input_split_sizes=send)

    times = {"reshard": best_of(reshard, repeats), "all_to_all": best_of(all_to_all, repeats),
             "tensor_ops": best_of(reshard_tensor_ops, repeats)}
    gathered = [None] * world
    dist.all_gather_object(gathered, times)
    if rank == 0:
        print(json.dumps({"bytes_sent_rank0": sum(send), "times": gathered}))
    dist.destroy_process_group()


def bench_torch(world=4, repeats=10):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes = [subprocess.Popen([sys.executable, __file__, "--worker", str(r), str(world), str(port), str(repeats)],
                                  stdout=subprocess.PIPE, text=True) for r in range(world)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed: {outputs}")
    result = json.loads(outputs[0].strip().splitlines()[-1])
    reshard = max(t["reshard"] for t in result["times"])  # the slowest rank finishes the step
    a2a = max(t["all_to_all"] for t in result["times"])
    tensor_ops = max(t["tensor_ops"] for t in result["times"])
    print(f"torch  4 gloo ranks, rank 0 sends {result['bytes_sent_rank0'] / 1e6:.1f} MB: reshard {reshard * 1e3:.1f} ms, "
          f"all_to_all_single {a2a * 1e3:.1f} ms, speed ratio {a2a / reshard:.2f} (target >= 0.8); "
          f"the tensor-operations executor {tensor_ops * 1e3:.1f} ms")
    return {"reshard_ms": reshard * 1e3, "all_to_all_ms": a2a * 1e3, "tensor_ops_ms": tensor_ops * 1e3}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        torch_worker(*(int(v) for v in sys.argv[2:6]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help="plan, local, torch (default: all)")
    parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build", "default"))
    args = parser.parse_args()
    print(f"{datetime.date.today()}  {os.cpu_count()} cores")
    for which in args.which or ["plan", "local", "torch"]:
        if which not in ("plan", "local", "torch"):
            parser.error(f"unknown benchmark '{which}' (plan, local, torch)")
        {"plan": lambda: bench_plan(args.build), "local": bench_local, "torch": bench_torch}[which]()


if __name__ == "__main__":
    main()
