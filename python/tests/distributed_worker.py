"""One rank of a torch.distributed (gloo, 127.0.0.1) scenario, started by test_distributed.py:
    python distributed_worker.py SCENARIO RANK WORLD PORT
Exits 0 when the rank's checks pass; prints the error and exits 1 otherwise."""

import datetime
import sys

import numpy
import torch
import torch.distributed as dist

import shardalg
import shardalg.torch

TIMEOUT = 60  # seconds: any collective or wait that takes longer fails the scenario


def whole_tensors(model, torch_dtype):
    """Every tensor of the model with values unique per element (the same on every rank)."""
    out = {}
    for i, t in enumerate(model.tensors):
        n = int(numpy.prod(t.shape))
        values = (torch.arange(n, dtype=torch.float64) % 251 + i * 0.25).reshape(t.shape)
        out[t.name] = values.to(torch_dtype)
    return out


def check_equal(expected, got, what):
    for name, buffer in expected.items():
        if not torch.equal(buffer, got[name]):
            raise AssertionError(f"{what}: buffer '{name}' differs in {int((buffer != got[name]).sum())} elements")


EXECUTOR = None  # the executor scenarios ask for ("engine" or "tensor"; None: shardalg.torch's default)


def llama(rank, dtype):
    model = shardalg.model_from_zoo("llama3-8b", scale_down=16).with_dtype(dtype)
    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    src = shardalg.layout_model(model, "zero3 dp=4")
    dst = shardalg.layout_model(model, "fsdp-tp dp=2,tp=2")
    plan = shardalg.ModelReshardPlan(src, dst)
    whole = whole_tensors(model, torch_dtype)
    sources = src.scatter(rank, whole)
    destinations = dst.local_buffers(rank, like=torch)
    stats = shardalg.torch.reshard(plan, sources, destinations, timeout=TIMEOUT, executor=EXECUTOR)
    check_equal(dst.scatter(rank, whole), destinations, f"rank {rank}")
    if stats["bytes_received"] + stats["bytes_local"] == 0:
        raise AssertionError("nothing moved")


def partial_sum(rank):
    """Partial(sum) over 4 ranks -> Shard(0): rank r contributes (r + 1) * base; the result is 10 * base."""
    shape = (64, 24)
    src = shardalg.ModelLayout([("g", "fp32", shardalg.MeshLayout.parse("dp=4", "P(sum)", shape))])
    dst = shardalg.ModelLayout([("g", "fp32", shardalg.MeshLayout.parse("dp=4", "S(0)", shape))])
    plan = shardalg.ModelReshardPlan(src, dst)
    base = torch.arange(64 * 24, dtype=torch.float32).reshape(shape)
    sources = {"g": base * (rank + 1)}
    destinations = dst.local_buffers(rank, like=torch)
    shardalg.torch.reshard(plan, sources, destinations, timeout=TIMEOUT, executor=EXECUTOR)
    expected = dst.scatter(rank, {"g": base * 10})
    check_equal(expected, destinations, f"rank {rank}")


def expect_refusal(call, message, otherwise):
    """`call` must raise shardalg.Error saying `message`; AssertionError(otherwise) if it returns."""
    try:
        call()
    except shardalg.Error as e:
        if message not in str(e):
            raise
        return
    raise AssertionError(otherwise)


def mixed_executors(rank):
    """Ranks asking for different executors: every rank fails with an Error saying so."""
    model = shardalg.model_from_zoo("llama3-8b", scale_down=64).with_dtype("fp32")
    src, dst = shardalg.layout_model(model, "zero3 dp=4"), shardalg.layout_model(model, "fsdp dp=4")
    plan = shardalg.ModelReshardPlan(src, dst)
    expect_refusal(lambda: shardalg.torch.reshard(plan, src.local_buffers(rank, like=torch), dst.local_buffers(rank, like=torch),
                                                  timeout=TIMEOUT, executor=EXECUTOR),
                   "different executors", "ranks with different executors went ahead")


def engine_options(rank):
    """The tensor executor asked for the engine's memory limit: every rank refuses rather than ignore it."""
    model = shardalg.model_from_zoo("llama3-8b", scale_down=64).with_dtype("fp32")
    src, dst = shardalg.layout_model(model, "zero3 dp=4"), shardalg.layout_model(model, "fsdp dp=4")
    expect_refusal(lambda: shardalg.torch.reshard(shardalg.ModelReshardPlan(src, dst), src.local_buffers(rank, like=torch),
                                                  dst.local_buffers(rank, like=torch), timeout=TIMEOUT, executor=EXECUTOR,
                                                  memory_limit=1 << 20),
                   "memory_limit", "the tensor executor ignored memory_limit")


def bad_buffer(rank):
    """Rank 2 passes a destination buffer one element short: every rank must fail naming it."""
    model = shardalg.model_from_zoo("llama3-8b", scale_down=64).with_dtype("fp32")
    src = shardalg.layout_model(model, "zero3 dp=4")
    dst = shardalg.layout_model(model, "fsdp dp=4")
    plan = shardalg.ModelReshardPlan(src, dst)
    sources = src.local_buffers(rank, like=torch)
    destinations = dst.local_buffers(rank, like=torch)
    if rank == 2:
        name = dst.buffer_names[1]
        destinations[name] = destinations[name].flatten()[1:]
    try:
        shardalg.torch.reshard(plan, sources, destinations, timeout=TIMEOUT, executor=EXECUTOR)
    except shardalg.Error as e:
        if "rank 2" not in str(e) or "destination" not in str(e):
            raise AssertionError(f"the error does not name rank 2's destination buffer: {e}")
        return
    raise AssertionError("reshard accepted rank 2's short buffer")


def main():
    global EXECUTOR
    scenario, rank, world, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if ":" in scenario:  # "llama-bf16:tensor": the scenario under that executor
        scenario, EXECUTOR = scenario.split(":")
        if EXECUTOR == "mixed":  # odd ranks ask for tensor operations, even ranks for the engine: all must refuse
            EXECUTOR = "tensor" if rank % 2 else "engine"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=TIMEOUT))
    try:
        if scenario == "llama-bf16":
            llama(rank, "bf16")
        elif scenario == "llama-fp32":
            llama(rank, "fp32")
        elif scenario == "partial-sum":
            partial_sum(rank)
        elif scenario == "executors":
            mixed_executors(rank)
        elif scenario == "engine-options":
            engine_options(rank)
        elif scenario == "bad-buffer":
            bad_buffer(rank)
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    except Exception as e:  # reported by the test with the rank's output
        print(f"rank {rank}: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
