"""The shardalg program under hostile input: every failure is one line `error: ...` with exit code 2,
values echoed escaped and shortened, and every size accepted finishes in bounded time and memory
(or is refused, with one line, before the work starts)."""

import json
import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

CLI = os.environ.get("SHARDALG_CLI")
pytestmark = pytest.mark.skipif(not CLI, reason="SHARDALG_CLI (the shardalg program) is not set")


def run(*args, timeout=60, memory_limit=None):
    """Runs the program; returns (exit code, stdout, stderr). `memory_limit` caps its address space."""
    def limit():
        if memory_limit:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    result = subprocess.run([CLI, *args], capture_output=True, timeout=timeout, preexec_fn=limit)
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert "[json.exception" not in err and "std::" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# --- files: nesting, directories, pipes, unreadable, huge values ---------------------------------

def plan_with_model(path):
    return run("plan", "--model", str(path), "--src-layout", "zero3 dp=2", "--dst-layout", "zero3 dp=4", "--summary")


def test_model_nested_100000_deep_is_refused(tmp_path):
    model = tmp_path / "deep.json"
    model.write_text('{"tensors":[{"name":"a","shape":[4],"dtype":' + "[" * 100000 + "]" * 100000 + "}]}")
    code, _, err = plan_with_model(model)
    assert_one_line_error(code, err, "nests deeper than 64 levels")


def test_model_nested_within_the_bound_names_the_value(tmp_path):
    model = tmp_path / "nested.json"
    model.write_text('{"tensors":[{"name":"a","shape":[4],"dtype":' + "[" * 40 + "]" * 40 + "}]}")
    code, _, err = plan_with_model(model)
    assert_one_line_error(code, err, '"dtype" must be a string, not [[[[')


def test_directory_as_model_is_refused(tmp_path):
    code, _, err = plan_with_model(tmp_path)
    assert_one_line_error(code, err, "is not a regular file")


def test_named_pipe_as_model_is_refused_without_waiting(tmp_path):
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    code, _, err = plan_with_model(pipe)  # a wait for a writer would time out
    assert_one_line_error(code, err, "is not a regular file")


def test_unreadable_model_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    model = tmp_path / "secret.json"
    model.write_text('{"tensors":[{"name":"a","shape":[4]}]}')
    model.chmod(0)
    code, _, err = plan_with_model(model)
    assert_one_line_error(code, err, "cannot open", "Permission denied")


def test_invalid_json_has_no_library_tag(tmp_path):
    model = tmp_path / "bad.json"
    model.write_text('{"tensors": [')
    code, _, err = plan_with_model(model)
    assert_one_line_error(code, err, "is not valid JSON: parse error")


def test_long_json_value_is_shortened_with_its_length(tmp_path):
    model = tmp_path / "long.json"
    dtype = ["x" * 5000]
    model.write_text(json.dumps({"tensors": [{"name": "a", "shape": [4], "dtype": dtype}]}))
    code, _, err = plan_with_model(model)
    assert_one_line_error(code, err, '"dtype" must be a string, not ["xxx', f"({len(json.dumps(dtype, separators=(',', ':')))} characters)")
    assert len(err) < 600


# --- values: control characters and long text --------------------------------------------------

def test_control_characters_are_escaped():
    code, _, err = run("slices", "--mesh", "dp=2\nx\x01")
    assert_one_line_error(code, err, "mesh 'dp=2\\nx\\x01'")


def test_control_characters_in_an_unknown_subcommand_are_escaped():
    code, _, err = run("sl\tices")
    assert_one_line_error(code, err, "unknown subcommand 'sl\\tices'")


def test_control_characters_in_option_values_are_escaped():
    code, _, err = run("groups", "--convention", "deep\nspeed", "--world", "8")
    assert_one_line_error(code, err, "deep\\nspeed")


@pytest.mark.parametrize("args", [
    ["slices", "--mesh", "dp=" + "9" * 10000],
    ["slices", "--placements", "S" * 10000],
    ["slices", "--shape", "1," * 5000],
    ["groups", "--convention", "megatron", "--world", "9" * 10000],
    ["plan", "--model", "m" * 10000 + ".json", "--src-layout", "zero3 dp=2", "--dst-layout", "zero3 dp=2"],
])
def test_long_values_are_shortened(args):
    code, _, err = run(*args)
    assert code == 2
    assert err.count("\n") == 1 and len(err) < 1200, err[:300]
    assert "characters)" in err, err


@settings(max_examples=60, deadline=None)
@given(option=st.sampled_from(["--mesh", "--placements", "--shape", "--devices", "--shard-order"]),
       value=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40))
def test_any_text_gives_an_answer_or_one_line(option, value):
    """Law: whatever text an option gets, the program answers (exit 0) or refuses with one line (exit 2)."""
    code, _, err = run("slices", "--mesh", "dp=2,tp=2", "--placements", "S(0),R", "--shape", "4,4", option, value, timeout=30)
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, repr(err)


# --- sizes: huge worlds on every command finish quickly or are refused -------------------------

HUGE = str(1 << 24)


@pytest.mark.parametrize("args, refusal", [
    (["groups", "--convention", "deepspeed", "--world", HUGE, "--ep", "8", "--json", "--max-memory", "1GiB"], "--max-memory"),
    (["partition", "--scheme", "zero3", "--world", HUGE, "--numels", "10,6,3", "--json", "--max-memory", "512MiB"], "--max-memory"),
    (["plan", "--shape", "4", "--src-mesh", "dp=4096,tp=4096", "--src-placements", "S(0),R", "--dst-placements", "R,R", "--summary",
      "--max-memory", "512MiB"], "counting every rank's bytes needs about 1.0 GiB"),
    (["cost", "--shape", "4", "--src-mesh", "dp=4096,tp=4096", "--src-placements", "S(0),R", "--dst-placements", "R,R",
      "--max-memory", "512MiB"], "--max-memory"),
    (["plan", "--shape", "4", "--src-mesh", "dp=4096,tp=4096", "--src-placements", "S(0),R", "--dst-placements", "R,R", "--json",
      "--max-memory", "4GiB"], "planning every rank needs about 7.0 GiB (67108864 transfers, 112 bytes each)"),
    (["plan", "--shape", "4", "--src-mesh", "dp=" + HUGE, "--src-placements", "S(0)", "--dst-placements", "R", "--summary",
      "--max-memory", "256MiB"], "--max-memory"),
    (["plan", "--model", "llama3-405b", "--src-layout", "fsdp dp=8", "--dst-layout", "fsdp dp=4", "--simulate"], "--simulate needs about"),
    (["groups", "--convention", "deepspeed", "--world", str((1 << 24) + 1)], "outside its range [1, 16777216]"),
    (["partition", "--scheme", "zero3", "--world", "0", "--numels", "4"], "outside its range [1, 16777216]"),
    (["plan", "--shape", "8192,4096", "--src-mesh", "dp=512", "--src-placements", "S(0)", "--dst-placements", "S(1)", "--relabel",
      "--relabel-exact-limit", "4096"], "greedy"),
    (["slices", "--mesh", "dp=2", "--placements", "BC(0,1)", "--shape", "1000000000000"], "more than the limit"),
])
def test_huge_sizes_are_refused_before_the_work(args, refusal):
    code, _, err = run(*args, timeout=60, memory_limit=2 << 30)
    assert_one_line_error(code, err, refusal)


def test_replicated_source_summary_is_counted_rank_by_rank():
    """S(0),R on a million ranks to R,R: each destination's sender found without visiting the other
    1,023 replicas, the totals counted without listing the 4 million transfers."""
    code, out, err = run("plan", "--shape", "4", "--src-mesh", "dp=1024,tp=1024", "--src-placements", "S(0),R",
                         "--dst-placements", "R,R", "--summary", timeout=300, memory_limit=1 << 30)
    assert code == 0, err
    totals = dict(line.rsplit(None, 1) for line in out.splitlines() if not line.startswith("plan time"))
    ranks, holders = 1 << 20, 4 * 1024  # rank (dp, tp) holds element dp when dp < 4
    # Element d reaches rank (dp, tp) from rank (d, tp): locally when dp == d.
    assert int(totals["bytes kept local"]) == holders * 4
    assert int(totals["bytes moved between ranks"]) == ranks * 16 - holders * 4
    assert int(totals["messages"]) == ranks * 4 - holders
    assert int(totals["max bytes sent by a rank"]) == (1024 - 1) * 4
    assert int(totals["max bytes received"]) == 16
    assert int(totals["transfers (boxes)"]) == ranks * 4


def test_huge_mesh_slices_stream_in_bounded_memory():
    """A million-rank listing is written rank by rank: memory stays far below the output's size."""
    code, out, err = run("slices", "--mesh", "dp=1048576", "--placements", "S(0)", "--shape", "4", "--json", timeout=120,
                         memory_limit=1 << 30)
    assert code == 0, err
    ranks = json.loads(out)["ranks"]
    assert len(ranks) == 1 << 20 and ranks[3]["boxes"] == [{"offset": [3], "shape": [1]}] and ranks[4]["boxes"] == []


def test_huge_world_groups_stream_in_bounded_memory():
    code, out, err = run("groups", "--convention", "deepspeed", "--world", str(1 << 20), "--ep", "8", "--json", timeout=120,
                         memory_limit=1 << 30)
    assert code == 0, err
    groups = json.loads(out)
    assert sorted(r for group in groups["ep"] for r in group) == list(range(1 << 20))
