"""Real checkpoints, written: PyTorch 1.13 saves a DCP checkpoint at 4 gloo ranks; `shardalg
checkpoint reshard` converts it to 3 ranks and PyTorch loads that at 3 ranks (and the reverse,
3 -> 4) with every element and value equal to what was saved. A reshard killed half-way, or
stopped by a full disk, leaves no output that looks complete, and a re-run succeeds.
Consolidation to Hugging Face safetensors keeps every tensor element by element."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

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
    assert "checked: 5 tensors" in done.stdout and "2 entries equal the source" in done.stdout
    assert "resharded: 100%" in done.stderr  # plain progress lines when not on a terminal
    assert sorted(os.listdir(three)) == [".metadata", "__0_0.distcp", "__1_0.distcp", "__2_0.distcp"]
    run_ranks("expect", three, 3)
    back = cli("reshard", three, four, "--layout", "fsdp dp=4", "--quiet")
    assert back.returncode == 0, back.stdout + back.stderr
    assert back.stderr == ""
    run_ranks("expect", four, 4)
    result = shardalg.Checkpoint(saved).compare(shardalg.Checkpoint(four))
    assert result["equal"], result["differences"]
    assert result["tensors"] == 5 and result["entries"] == 2


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
    assert "checked: 5 tensors" in done.stdout and "(2 non-tensor entries left out)" in done.stdout
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    assert len(files) > 1 and files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        index = json.load(f)
    assert set(index["weight_map"]) == {"rows", "cols", "blocks", "ids", "plain"}
    from dcp_worker import TENSORS, expected_value
    ck = shardalg.Checkpoint(out)
    for name in TENSORS:
        assert torch.equal(ck.read_tensor(name, like="torch"), expected_value(name)), name
