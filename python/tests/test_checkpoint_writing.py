"""Real checkpoints, written: PyTorch 1.13 saves a DCP checkpoint at 4 gloo ranks; `shardalg
checkpoint reshard` converts it to 3 ranks and PyTorch loads that at 3 ranks (and the reverse,
3 -> 4) with every element and value equal to what was saved. A reshard killed half-way, or
stopped by a full disk, leaves no output that looks complete, and a re-run succeeds.
Consolidation to Hugging Face safetensors keeps every tensor element by element."""

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest

torch = pytest.importorskip("torch")
import shardalg  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_checkpoints import CLI, cli, run_ranks, saved  # noqa: E402,F401  (saved: the module's fixture)


def partial(destination):
    return os.path.join(os.path.dirname(destination), "." + os.path.basename(destination) + ".partial")


def test_reshard_4_to_3_and_back_loaded_by_torch(saved, tmp_path):
    three, four = str(tmp_path / "three"), str(tmp_path / "four")
    done = cli("reshard", saved, three, "--layout", "fsdp dp=3", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checked: 7 tensors" in done.stdout and "2 entries equal the source" in done.stdout
    assert "resharded: 100%" in done.stderr  # plain progress lines when not on a terminal
    assert sorted(os.listdir(three)) == [".metadata", "__0_0.distcp", "__1_0.distcp", "__2_0.distcp"]
    run_ranks("expect", three, 3)
    back = cli("reshard", three, four, "--layout", "fsdp dp=4", "--quiet")
    assert back.returncode == 0, back.stdout + back.stderr
    assert back.stderr == ""
    run_ranks("expect", four, 4)
    result = shardalg.Checkpoint(saved).compare(shardalg.Checkpoint(four))
    assert result["equal"], result["differences"]
    assert result["tensors"] == 7 and result["entries"] == 2


def test_reshard_from_python_with_progress(saved, tmp_path):
    ck = shardalg.Checkpoint(saved)
    seen = []
    summary = ck.reshard(str(tmp_path / "two"), shardalg.layout_model(ck.model(), "fsdp dp=2"), torch="2",
                         memory_limit="64KiB", threads=2, progress=lambda done, total: seen.append((done, total)))
    assert summary["format"] == "dcp" and summary["files"] == ["__0_0.distcp", "__1_0.distcp"]
    assert seen and seen[-1][0] == seen[-1][1] > 0
    two = shardalg.Checkpoint(str(tmp_path / "two"))
    assert two.verify()["problems"] == []
    assert ck.compare(two)["equal"]
    with pytest.raises(shardalg.Error, match="already exists"):
        ck.reshard(str(tmp_path / "two"), shardalg.layout_model(ck.model(), "fsdp dp=2"))


def test_a_flipped_byte_is_found_by_check(saved, tmp_path):
    out = str(tmp_path / "out")
    assert cli("reshard", saved, out, "--layout", "fsdp dp=2", "--quiet").returncode == 0
    ck = shardalg.Checkpoint(out)
    chunk = ck.inspect()["tensors"][0]["chunks"][0]
    with open(os.path.join(out, chunk["file"]), "r+b") as f:
        f.seek(chunk["byte_offset"] + chunk["bytes"] - 120)  # inside the data, before the archive's tail
        value = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([value[0] ^ 0xFF]))
    result = shardalg.Checkpoint(saved).compare(shardalg.Checkpoint(out))
    assert not result["equal"]
    assert any("differs" in d for d in result["differences"]), result


def mpirun_cli(processes, *args):
    """`mpirun -np PROCESSES shardalg checkpoint ARGS...`, bounded in time."""
    mpirun = shutil.which("mpirun")
    if not CLI or not mpirun:
        pytest.skip("SHARDALG_CLI or mpirun is missing")
    flags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return subprocess.run([mpirun, *flags, "-np", str(processes), CLI, "checkpoint", *args], capture_output=True, text=True, timeout=180)


def test_reshard_divided_among_mpi_processes_equals_one_process(saved, tmp_path):
    alone, shared = str(tmp_path / "alone"), str(tmp_path / "shared")
    assert cli("reshard", saved, alone, "--layout", "fsdp dp=3", "--quiet").returncode == 0
    done = mpirun_cli(2, "reshard", saved, shared, "--layout", "fsdp dp=3", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("resharded ") == 1 and "2 processes" in done.stdout  # the leader's summary only
    assert done.stdout.count("checked: 7 tensors") == 1 and "2 entries equal the source" in done.stdout
    assert "process 0's share of 2" in done.stderr
    for name in sorted(os.listdir(alone)):  # the same bytes, whoever wrote each file
        with open(os.path.join(alone, name), "rb") as a, open(os.path.join(shared, name), "rb") as b:
            assert a.read() == b.read(), name
    assert sorted(os.listdir(shared)) == sorted(os.listdir(alone))
    run_ranks("expect", shared, 3)


def test_one_mpi_process_failing_stops_all_and_leaves_nothing(saved, tmp_path):
    broken, out = tmp_path / "broken", str(tmp_path / "out")
    shutil.copytree(saved, broken)
    last = broken / "__3_0.distcp"
    os.truncate(last, os.path.getsize(last) // 2)  # only the processes whose files read it fail
    done = mpirun_cli(3, "reshard", str(broken), out, "--layout", "fsdp dp=4", "--quiet")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.match(r"error: process \d: .*__3_0\.distcp", errors[0]), done.stderr
    assert not os.path.exists(out) and not os.path.exists(partial(out))
    shutil.rmtree(broken)
    shutil.copytree(saved, broken)  # repaired: the same command succeeds
    again = mpirun_cli(3, "reshard", str(broken), out, "--layout", "fsdp dp=4", "--quiet", "--check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "checked: 7 tensors" in again.stdout


def test_torch_ranks_share_a_conversion_then_load_it(saved, tmp_path):
    source = str(tmp_path / "ck")
    shutil.copytree(saved, source)
    run_ranks("convert", source, 3)  # each rank writes its share; torch then loads the result at 3 ranks
    assert sorted(os.listdir(source + ".converted")) == [".metadata", "__0_0.distcp", "__1_0.distcp", "__2_0.distcp"]
    assert shardalg.Checkpoint(saved).compare(shardalg.Checkpoint(source + ".converted"))["equal"]
    shutil.copytree(saved, source + ".damaged")
    last = os.path.join(source + ".damaged", "__3_0.distcp")
    os.truncate(last, os.path.getsize(last) // 2)
    run_ranks("convert-damaged", source, 3)


def test_a_checkpoint_with_a_hole_is_refused_not_converted(tmp_path):
    write_safetensors(tmp_path / "flat", [("w", "fp32", (6, 2))])
    ck = shardalg.Checkpoint(str(tmp_path / "flat"))
    ck.reshard(str(tmp_path / "per"), shardalg.layout_model(ck.model(), "fsdp dp=3"), format="safetensors")
    os.remove(tmp_path / "per" / "shard-00002-model-00001-of-00001.safetensors")  # rows [2, 4) of w
    holed = shardalg.Checkpoint(str(tmp_path / "per"))
    with pytest.raises(shardalg.Error, match=r"tensor 'w' is incomplete in the checkpoint: elements at offsets \[2, 0\] sizes \[2, 2\]"):
        holed.reshard(str(tmp_path / "out"), shardalg.layout_model(holed.model(), "fsdp dp=2"))
    assert not os.path.exists(tmp_path / "out")
    with pytest.raises(shardalg.Error, match="incomplete"):
        holed.load(shardalg.layout_model(holed.model(), "fsdp dp=2"), rank=0)


def test_sharing_needs_an_agreement_and_a_valid_share(saved, tmp_path):
    ck = shardalg.Checkpoint(saved)
    layout = shardalg.layout_model(ck.model(), "fsdp dp=2")
    with pytest.raises(shardalg.Error, match="process 1 of 2 needs agree"):
        ck.reshard(str(tmp_path / "a"), layout, process=1, processes=2)
    with pytest.raises(shardalg.Error, match="process 2 of 2: a share needs"):
        ck.consolidate(str(tmp_path / "b"), skip_entries=True, process=2, processes=2, agree=lambda failure: failure)
    assert not os.listdir(tmp_path)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A ~48 MB safetensors checkpoint: long enough to be killed while copying."""
    folder = tmp_path_factory.mktemp("large") / "src"
    folder.mkdir()
    tensors = {f"layer{i}.weight": torch.arange(i, i + 1_000_000, dtype=torch.float32).reshape(1000, 1000) for i in range(12)}
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        data = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(folder / "model.safetensors", "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return str(folder)


def test_killed_reshard_leaves_nothing_complete_and_rerun_succeeds(large, tmp_path):
    if not CLI:
        pytest.skip("SHARDALG_CLI (the shardalg program) is not set")
    out = str(tmp_path / "out")
    process = subprocess.Popen([CLI, "checkpoint", "reshard", large, out, "--layout", "fsdp dp=8", "--threads", "1",
                                "--memory-limit", "64KiB", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (os.path.isdir(partial(out)) and os.listdir(partial(out))) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert process.poll() is None, "the reshard ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not os.path.exists(out)
    assert not os.path.exists(os.path.join(partial(out), ".metadata"))  # the partial folder never looks complete
    rerun = cli("reshard", large, out, "--layout", "fsdp dp=8", "--check", "--quiet")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not os.path.exists(partial(out))
    assert "checked: 12 tensors" in rerun.stdout


def test_full_disk_leaves_nothing_and_names_the_file(large, tmp_path):
    if not CLI:
        pytest.skip("SHARDALG_CLI (the shardalg program) is not set")
    out = str(tmp_path / "out")

    def small_disk():  # files may not grow past 1 MB: writes fail as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    failed = subprocess.run([CLI, "checkpoint", "reshard", large, out, "--layout", "fsdp dp=2", "--quiet"],
                            capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert failed.returncode == 2
    assert "__0_0.distcp" in failed.stderr and "File too large" in failed.stderr, failed.stderr
    assert not os.path.exists(out) and not os.path.exists(partial(out))
    assert cli("reshard", large, out, "--layout", "fsdp dp=2", "--quiet").returncode == 0


def test_consolidate_to_hugging_face_files(saved, tmp_path):
    refused = cli("consolidate", saved, str(tmp_path / "refused"))
    assert refused.returncode == 2 and "non-tensor entries ('step', 'note')" in refused.stderr
    out = str(tmp_path / "hf")
    done = cli("consolidate", saved, out, "--max-shard-size", "300B", "--skip-entries", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checked: 7 tensors" in done.stdout and "(2 non-tensor entries left out)" in done.stdout
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    assert len(files) > 1 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index = json.load(f)
    assert set(index["weight_map"]) == {"rows", "cols", "blocks", "ids", "plain", "flags", "counts"}
    from dcp_worker import TENSORS, expected_value
    ck = shardalg.Checkpoint(out)
    for name in TENSORS:
        assert torch.equal(ck.read_tensor(name, like="torch"), expected_value(name)), name


def write_safetensors(folder, tensors):
    """One safetensors file of (name, dtype, shape) tensors, every 32-bit word distinct."""
    os.makedirs(folder)
    header, data = {}, b""
    for index, (name, dtype, shape) in enumerate(tensors):
        size = (4 if dtype == "fp32" else 2) * (int(numpy.prod(shape)) if shape else 1)
        words = numpy.arange(index << 20, (index << 20) + (size + 3) // 4, dtype=numpy.uint32)
        header[name] = {"dtype": dtype.replace("fp", "F").replace("bf16", "BF16"), "shape": list(shape),
                        "data_offsets": [len(data), len(data) + size]}
        data += words.tobytes()[:size]
    text = json.dumps(header).encode()
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data)


def test_adam_state_zero3_elastic_from_python_and_the_cli(tmp_path):
    params = [shardalg.ModelTensor("embed", [37, 5], "bf16", "vocab_parallel"), shardalg.ModelTensor("norm", [5], "bf16")]
    model = shardalg.ModelSpec("tiny", params).with_optimizer("adam")
    assert model.optimizer == "adam" and [g.name for g in model.param_groups] == ["decay", "no_decay"]
    assert [t.name for t in model.tensors][2:6] == ["optimizer.state.embed.master", "optimizer.state.embed.exp_avg",
                                                    "optimizer.state.embed.exp_avg_sq", "optimizer.state.embed.step"]
    assert model.tensors[3].parameter == "embed" and model.tensors[3].state == "exp_avg" and model.tensors[3].group == "decay"
    at8 = shardalg.layout_model(model, "zero3 dp=8")
    assert at8.buffer_of("optimizer.state.embed.exp_avg") == "zero3:optimizer.state.embed.exp_avg"
    assert at8.buffer_of("norm") != at8.buffer_of("embed")  # DeepSpeed flattens each param group apart
    values = str(tmp_path / "values")
    write_safetensors(values, [(t.name, t.dtype, t.shape) for t in model.tensors])
    source = shardalg.Checkpoint(values)
    source.reshard(str(tmp_path / "dp8"), at8)
    shardalg.Checkpoint(str(tmp_path / "dp8")).reshard(str(tmp_path / "dp6"), shardalg.layout_model(model, "zero3 dp=6"))
    with open(tmp_path / "tiny.json", "w") as f:
        json.dump({"name": "tiny", "tensors": [{"name": t.name, "shape": t.shape, "role": t.role} for t in params]}, f)
    done = cli("reshard", str(tmp_path / "dp6"), str(tmp_path / "dp12"), "--model", str(tmp_path / "tiny.json"), "--optimizer", "adam",
               "--layout", "zero3 dp=12", "--check", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checked: 10 tensors" in done.stdout
    dp12 = shardalg.Checkpoint(str(tmp_path / "dp12"))
    assert sum(f.endswith(".distcp") for f in os.listdir(tmp_path / "dp12")) == 12
    report = dp12.verify(model=model, layout="zero3 dp=12")
    assert report["problems"] == [] and report["layout_matches"], report
    result = source.compare(dp12)
    assert result["equal"], result["differences"]
    assert result["tensors"] == 10
    refused = cli("reshard", str(tmp_path / "dp6"), str(tmp_path / "refused"), "--optimizer", "adam", "--layout", "zero3 dp=2")
    assert refused.returncode == 2 and "--optimizer requires --model" in refused.stderr, refused.stderr


def test_safetensors_per_rank_from_python_and_the_cli(tmp_path):
    model = shardalg.ModelSpec("tiny", [shardalg.ModelTensor("embed", [11, 4], "bf16", "vocab_parallel")]).with_optimizer("adam")
    values = str(tmp_path / "values")
    write_safetensors(values, [(t.name, t.dtype, t.shape) for t in model.tensors])
    source = shardalg.Checkpoint(values)
    summary = source.reshard(str(tmp_path / "ranks"), shardalg.layout_model(model, "fsdp dp=4"), format="safetensors")
    assert summary["format"] == "safetensors"
    assert summary["files"] == [f"shard-0000{r}-model-00001-of-00001.safetensors" for r in (1, 2, 3, 4)]
    ranks = shardalg.Checkpoint(str(tmp_path / "ranks"))
    assert ranks.verify(model=model, layout="fsdp dp=4")["layout_matches"]
    assert source.compare(ranks)["equal"]
    done = cli("reshard", str(tmp_path / "ranks"), str(tmp_path / "zero"), "--format", "safetensors", "--layout", "zero3 dp=3",
               "--check", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resharded " in done.stdout and ": safetensors, 7 files" in done.stdout, done.stdout  # 44 elements over 3: 2 + 3 + 2 boxes
    with pytest.raises(shardalg.Error, match="applies to the dcp format"):
        source.reshard(str(tmp_path / "bad"), shardalg.layout_model(model, "fsdp dp=2"), format="safetensors", torch="2")
