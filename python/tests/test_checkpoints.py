"""Real checkpoints, read: PyTorch 1.13 saves DCP checkpoints over 4 gloo ranks (dcp_worker.py);
`shardalg checkpoint inspect` equals torch's own metadata, `verify` passes, and each rank's part
loaded by shardalg at 3 ranks equals what torch's load_state_dict gives there. Corruptions are
caught, each named; a pickle that would run a command is refused and never runs. safetensors
files (single and Hugging Face's sharded form) read back element by element."""

import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys

import numpy
import pytest

torch = pytest.importorskip("torch")
import shardalg  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from torch_compat import import_torch_checkpointing  # noqa: E402

WORKER = os.path.join(os.path.dirname(__file__), "dcp_worker.py")
TORCH2 = os.path.join(os.path.dirname(__file__), "torch2_metadata.py")
CLI = os.environ.get("SHARDALG_CLI")
DEADLINE = 240
TORCH_TO_DTYPE = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int64: "int64",
                  torch.int16: "int16", torch.bool: "bool", torch.complex64: "complex64", torch.complex128: "complex128"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(scenario, folder, world):
    port = str(free_port())
    processes = [subprocess.Popen([sys.executable, WORKER, scenario, folder, str(r), str(world), port],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(world)]
    try:
        outputs = [p.communicate(timeout=DEADLINE)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for rank, (p, out) in enumerate(zip(processes, outputs)):
        assert p.returncode == 0, f"rank {rank} of {scenario} failed:\n{out}"


def cli(*args):
    if not CLI:
        pytest.skip("SHARDALG_CLI (the shardalg program) is not set")
    return subprocess.run([CLI, "checkpoint", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("dcp") / "ck")
    run_ranks("save", folder, 4)
    return folder


def torch_metadata(folder):
    import_torch_checkpointing()
    with open(os.path.join(folder, ".metadata"), "rb") as f:
        return pickle.load(f)  # the test's own reference: torch's reading of its file


def copy_of(saved, tmp_path):
    target = str(tmp_path / "ck")
    shutil.copytree(saved, target)
    return target


def test_inspect_equals_torch_metadata(saved):
    meta = torch_metadata(saved)
    out = cli("inspect", saved, "--json")
    assert out.returncode == 0, out.stderr
    ours = json.loads(out.stdout)
    assert ours == shardalg.Checkpoint(saved).inspect()
    assert ours["format"] == "dcp"
    tensors = {t["name"]: t for t in ours["tensors"]}
    entries = {e["name"]: e for e in ours["entries"]}
    for name, md in meta.state_dict_metadata.items():
        if not hasattr(md, "chunks"):
            info = meta.storage_data[next(k for k in meta.storage_data if k.fqn == name)]
            assert entries[name] == {"name": name, "file": info.relative_path, "byte_offset": info.offset, "bytes": info.length}
            continue
        t = tensors[name]
        assert t["dtype"] == TORCH_TO_DTYPE[md.properties.dtype]
        assert tuple(t["shape"]) == tuple(md.size)
        theirs = sorted((tuple(c.offsets), tuple(c.sizes)) for c in md.chunks)
        assert sorted((tuple(c["offset"]), tuple(c["shape"])) for c in t["chunks"]) == theirs
        files = {tuple(k.offset): v.relative_path for k, v in meta.storage_data.items() if k.fqn == name}
        for c in t["chunks"]:
            assert c["file"] == files[tuple(c["offset"])]
            # byte_offset/bytes locate the raw elements: read them and compare with torch's values.
            with open(os.path.join(saved, c["file"]), "rb") as f:
                f.seek(c["byte_offset"])
                raw = f.read(c["bytes"])
            index = tuple(slice(o, o + s) for o, s in zip(c["offset"], c["shape"]))
            dtype = md.properties.dtype
            stored = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(c["shape"]) if raw else torch.zeros(c["shape"], dtype=dtype)
            from dcp_worker import expected_value
            assert torch.equal(stored, expected_value(name)[index])
    assert set(tensors) | set(entries) == set(meta.state_dict_metadata)


def test_verify_passes_and_counts(saved):
    meta = torch_metadata(saved)
    chunks = [c for md in meta.state_dict_metadata.values() if hasattr(md, "chunks") for c in md.chunks]
    tensor_count = sum(hasattr(md, "chunks") for md in meta.state_dict_metadata.values())
    nbytes = sum(int(torch.tensor(c.sizes).prod()) * torch.empty((), dtype=md.properties.dtype).element_size()
                 for md in meta.state_dict_metadata.values() if hasattr(md, "chunks") for c in md.chunks)
    out = cli("verify", saved)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"verified: {tensor_count} tensors, {len(chunks)} chunks, {nbytes} bytes"
    ck = shardalg.Checkpoint(saved)
    assert ck.verify()["problems"] == []
    # Against its model: the ShardedTensors were saved 4-way on dim 0 (rows, ids, flags, counts)
    # but not cols, blocks or plain, so "fsdp dp=4" matches 4 of 7 tensors.
    report = ck.verify(model=ck.model(), layout="fsdp dp=4")
    assert report["problems"] == [] and not report["layout_matches"] and report["tensors_differing"] == 3
    with pytest.raises(shardalg.Error, match="model and layout go together"):
        ck.verify(model=ck.model())


def test_each_rank_part_equals_torch_load_at_three_ranks(saved):
    run_ranks("load", saved, 3)


def test_whole_tensors_and_entries(saved):
    from dcp_worker import TENSORS, expected_value
    ck = shardalg.Checkpoint(saved)
    for name in TENSORS:
        assert torch.equal(ck.read_tensor(name, like="torch"), expected_value(name))
    import_torch_checkpointing()
    import io
    assert torch.load(io.BytesIO(ck.read_entry("step"))) == 7
    with pytest.raises(shardalg.Error, match="no tensor 'nope'"):
        ck.read_tensor("nope")


def torch2_copy(saved, tmp_path, *options):
    """A copy of the checkpoint whose .metadata is pickled as torch 2.x pickles it (torch2_metadata.py)."""
    folder = copy_of(saved, tmp_path)
    subprocess.run([sys.executable, TORCH2, os.path.join(saved, ".metadata"), os.path.join(folder, ".metadata"), *options],
                   check=True, timeout=120)
    return folder


def test_metadata_as_torch_2x_pickles_it(saved, tmp_path):
    folder = torch2_copy(saved, tmp_path)
    with open(os.path.join(folder, ".metadata"), "rb") as f:
        data = f.read()
    assert b"torch.distributed.checkpoint.metadata" in data and b"StorageMeta" in data and b"_shard" not in data
    assert shardalg.Checkpoint(folder).inspect() == shardalg.Checkpoint(saved).inspect()
    out = cli("verify", folder)
    assert out.returncode == 0, out.stdout + out.stderr
    from dcp_worker import TENSORS, expected_value
    ck = shardalg.Checkpoint(folder)
    for name in TENSORS:
        assert torch.equal(ck.read_tensor(name, like="torch"), expected_value(name))
    # Transform descriptors (torch 2.x's compressed items) are refused, naming the tensor.
    folder = torch2_copy(saved, tmp_path / "transforms", "--transforms")
    first = next(iter(torch_metadata(saved).storage_data)).fqn
    with pytest.raises(shardalg.Error, match=f"'{first}' is stored with transforms"):
        shardalg.Checkpoint(folder)


def test_read_plan_reads_each_byte_once_and_forwards_replicas(saved):
    ck = shardalg.Checkpoint(saved)
    layout = shardalg.layout_model(ck.model(), "replicated ranks=3")
    plans = [ck.read_plan(layout, r) for r in range(3)]
    stored = ck.inspect()["bytes"]
    size = {t.name: shardalg.element_bytes(t.dtype) for t in ck.model().tensors}
    read = sum(numpy.prod(r["lengths"]) * size[r["tensor"]] for p in plans for r in p["reads"])
    assert read == stored
    sends = sorted((s["from"], s["to"], s["tensor"], s["src_offsets"]) for p in plans for s in p["sends"])
    receives = sorted((s["from"], s["to"], s["tensor"], s["src_offsets"]) for p in plans for s in p["receives"])
    assert sends == receives and len(sends) > 0
    out = cli("read-plan", saved, "--layout", "replicated ranks=3", "--summary", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["bytes_read"] == stored and summary["bytes_forwarded"] == 2 * stored
    out = cli("read-plan", saved, "--layout", "fsdp dp=3", "--json")
    plan = json.loads(out.stdout)
    assert plan["forwards"] == [] and {r["rank"] for r in plan["reads"]} == {0, 1, 2}


def test_job_reads_each_byte_once_and_forwards_replicas(saved):
    run_ranks("load-shared", saved, 3)


def test_job_load_fails_every_rank_naming_a_damaged_file(saved, tmp_path):
    source = copy_of(saved, tmp_path)
    shutil.copytree(saved, source + ".damaged")
    last = os.path.join(source + ".damaged", "__3_0.distcp")
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) // 2)
    run_ranks("load-shared-damaged", source, 3)


def rewrite_metadata(folder, change):
    meta = torch_metadata(folder)
    change(meta)
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(meta, f)


def test_truncated_distcp_is_named(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    meta = torch_metadata(folder)
    key = next(k for k in meta.storage_data if k.fqn == "rows" and k.offset[0] == 3)
    path = os.path.join(folder, meta.storage_data[key].relative_path)
    os.truncate(path, os.path.getsize(path) - 100)
    out = cli("verify", folder)
    assert out.returncode == 1
    assert "tensor 'rows' chunk" in out.stdout and meta.storage_data[key].relative_path in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("not verified:")


def test_chunk_out_of_bounds(saved, tmp_path):
    folder = copy_of(saved, tmp_path)

    def move(meta):
        chunk = meta.state_dict_metadata["ids"].chunks[-1]
        key = next(k for k in meta.storage_data if k.fqn == "ids" and tuple(k.offset) == tuple(chunk.offsets))
        chunk.offsets = torch.Size([8])  # 3 elements from 8: past the end of 9
        meta.storage_data[type(key)("ids", [8], key.index)] = meta.storage_data.pop(key)
    rewrite_metadata(folder, move)
    out = cli("verify", folder)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "tensor 'ids'" in out.stdout and "outside the tensor's shape" in out.stdout


def test_overlapping_chunks_with_different_bytes(saved, tmp_path):
    folder = copy_of(saved, tmp_path)

    def overlap(meta):
        chunk = next(c for c in meta.state_dict_metadata["rows"].chunks if c.offsets[0] == 3)
        chunk.offsets = torch.Size([1, 0])
        key = next(k for k in meta.storage_data if k.fqn == "rows" and k.offset[0] == 3)
        meta.storage_data[type(key)("rows", [1, 0], key.index)] = meta.storage_data.pop(key)
    rewrite_metadata(folder, overlap)
    out = cli("verify", folder)
    assert out.returncode == 1
    assert "overlap" in out.stdout and "different bytes" in out.stdout and "tensor 'rows'" in out.stdout
    assert "are in no chunk" in out.stdout  # rows [4, 6) are now stored nowhere


def test_missing_chunk(saved, tmp_path):
    folder = copy_of(saved, tmp_path)

    def drop(meta):
        chunks = meta.state_dict_metadata["cols"].chunks
        gone = chunks.pop(1)
        for k in [k for k in meta.storage_data if k.fqn == "cols" and tuple(k.offset) == tuple(gone.offsets)]:
            del meta.storage_data[k]
    rewrite_metadata(folder, drop)
    out = cli("verify", folder)
    assert out.returncode == 1
    assert "tensor 'cols': elements at offsets [0, 2] sizes [5, 2] are in no chunk" in out.stdout


@pytest.mark.parametrize("variant", ["wrong hints", "no hints", "unshared offsets"])
def test_storage_items_find_their_chunks_whatever_their_index_hints(saved, tmp_path, variant):
    # MetadataIndex.index is only a hint and MetadataIndex.offset may be its own torch.Size or the
    # chunk's: every variant must map each storage item to the same chunk as torch's own file.
    want = cli("inspect", saved, "--json")
    assert want.returncode == 0, want.stderr
    folder = copy_of(saved, tmp_path)

    def change(meta):
        items = list(meta.storage_data.items())
        meta.storage_data.clear()
        for key, info in items:
            md = meta.state_dict_metadata[key.fqn]
            count = len(md.chunks) if hasattr(md, "chunks") else 1
            if variant == "wrong hints" and key.index is not None:
                key = type(key)(key.fqn, key.offset, (key.index + 1) % count if count > 1 else count)  # another chunk's, or none
            elif variant == "no hints":
                zeros = key.offset is not None and not any(key.offset)
                key = type(key)(key.fqn, None if zeros else key.offset, None)
            elif variant == "unshared offsets" and key.offset is not None:
                key = type(key)(key.fqn, torch.Size(list(key.offset)), key.index)
            meta.storage_data[key] = info
    rewrite_metadata(folder, change)
    out = cli("inspect", folder, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(want.stdout)


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_a_command_is_refused(saved, tmp_path):
    folder = copy_of(saved, tmp_path)
    marker = tmp_path / "was-run"
    with open(os.path.join(folder, ".metadata"), "wb") as f:
        pickle.dump(RunsACommand(str(marker)), f)
    for args in (["inspect", folder], ["verify", folder], ["read-plan", folder, "--layout", "fsdp dp=2"]):
        out = cli(*args)
        assert out.returncode == 2
        assert "refused pickle class 'posix.system'" in out.stderr
    with pytest.raises(shardalg.Error, match="refused pickle class 'posix.system'"):
        shardalg.Checkpoint(folder)
    assert not marker.exists()


def test_complex_tensors_read_and_kept_out_of_safetensors(tmp_path):
    """torch saves complex64 and complex128 tensors (one process, no_dist): shardalg lists their
    dtypes as torch's metadata does, reads them whole and as a rank's part element by element, and
    refuses to consolidate them into safetensors (which has no complex dtype) without writing."""
    import_torch_checkpointing()
    import torch.distributed._shard.checkpoint as dcp
    folder = str(tmp_path / "ck")
    values = {"z64": torch.complex(torch.arange(12.0).reshape(6, 2), -torch.arange(12.0).reshape(6, 2)),
              "z128": torch.complex(torch.arange(5.0, dtype=torch.float64), torch.full((5,), 0.25, dtype=torch.float64))}
    dcp.save_state_dict(values, dcp.FileSystemWriter(folder), no_dist=True)
    meta = torch_metadata(folder)
    ck = shardalg.Checkpoint(folder)
    dtypes = {t["name"]: t["dtype"] for t in ck.inspect()["tensors"]}
    assert dtypes == {name: TORCH_TO_DTYPE[md.properties.dtype] for name, md in meta.state_dict_metadata.items()}
    assert dtypes == {"z64": "complex64", "z128": "complex128"}
    for name, value in values.items():
        assert torch.equal(ck.read_tensor(name, like="torch"), value)
    layout = shardalg.layout_model(ck.model(), "fsdp dp=2")
    part = ck.load(layout, 1, like="torch")
    for name, value in values.items():
        assert torch.equal(part[layout.buffer_of(name)], torch.chunk(value, 2)[1]), name
    out = str(tmp_path / "hf")
    refused = cli("consolidate", folder, out)
    assert refused.returncode == 2 and "safetensors has no dtype for complex" in refused.stderr, refused.stderr
    assert not os.path.exists(out)


def write_safetensors(path, tensors):
    header, data, offset = {}, b"", 0
    for name, array in tensors.items():
        raw = array.tobytes()
        header[name] = {"dtype": {"float32": "F32", "int64": "I64", "float16": "F16"}[array.dtype.name],
                        "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def test_safetensors_single_and_sharded(tmp_path):
    rng = numpy.random.default_rng(7)
    tensors = {"embed": rng.standard_normal((6, 4)).astype(numpy.float32), "ids": numpy.arange(5, dtype=numpy.int64),
               "norm": rng.standard_normal(4).astype(numpy.float16)}
    single = tmp_path / "single"
    single.mkdir()
    write_safetensors(single / "model.safetensors", tensors)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    write_safetensors(sharded / "model-00001-of-00002.safetensors", {"embed": tensors["embed"]})
    write_safetensors(sharded / "model-00002-of-00002.safetensors", {"ids": tensors["ids"], "norm": tensors["norm"]})
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
        "embed": "model-00001-of-00002.safetensors", "ids": "model-00002-of-00002.safetensors",
        "norm": "model-00002-of-00002.safetensors"}}))
    for folder in (single, sharded):
        ck = shardalg.Checkpoint(str(folder))
        assert ck.format == "safetensors" and sorted(ck.tensor_names) == sorted(tensors)
        for name, array in tensors.items():
            assert numpy.array_equal(ck.read_tensor(name), array)
        layout = shardalg.layout_model(ck.model(), "fsdp dp=4")
        part = ck.load(layout, 1)
        assert numpy.array_equal(part["embed"], numpy.array_split(tensors["embed"], 4)[1])
        out = cli("verify", str(folder))
        assert out.returncode == 0 and out.stdout.strip().endswith(f"verified: 3 tensors, 3 chunks, {sum(a.nbytes for a in tensors.values())} bytes")


def test_safetensors_bad_headers_are_named(tmp_path):
    path = tmp_path / "model.safetensors"
    text = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(12))
    out = cli("inspect", str(tmp_path))
    assert out.returncode == 2 and "tensor 'b' starts at data byte 4; expected 8 (it overlaps the previous tensor)" in out.stderr
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    out = cli("inspect", str(tmp_path))
    assert out.returncode == 2 and "safetensors header of 1099511627776 bytes" in out.stderr
    text = json.dumps({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8))
    out = cli("inspect", str(tmp_path))
    assert out.returncode == 2 and "tensor 'a': data_offsets [0, 8) hold 8 bytes; shape [3] of F32 needs 12" in out.stderr
