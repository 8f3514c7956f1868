"""shardalg.torch.reshard across 4 processes over gloo on 127.0.0.1 (distributed_worker.py runs
each rank): Llama-3-8B shapes scaled down 16x from `zero3 dp=4` to `fsdp-tp dp=2,tp=2`, checked
element by element, in bf16 and fp32; a Partial(sum) source; a rank with a wrong buffer fails
every rank with its name. Both executors: the C++ engine, and tensor operations (the device path,
run here on CPU tensors). Every process has a deadline: none may hang."""

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("torch")

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
DEADLINE = 240  # seconds for all ranks of a scenario


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario, world=4):
    port = str(free_port())
    processes = [subprocess.Popen([sys.executable, WORKER, scenario, str(r), str(world), port], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for r in range(world)]
    outputs = []
    try:
        for p in processes:
            out, _ = p.communicate(timeout=DEADLINE)
            outputs.append((p.returncode, out))
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    return outputs


@pytest.mark.parametrize("scenario", ["llama-bf16", "llama-fp32", "partial-sum", "bad-buffer",
                                      "llama-bf16:tensor", "partial-sum:tensor", "bad-buffer:tensor",
                                      "executors:mixed", "engine-options:tensor"])
def test_four_gloo_ranks(scenario):
    for rank, (code, out) in enumerate(run_ranks(scenario)):
        assert code == 0, f"rank {rank} of {scenario} failed:\n{out}"
