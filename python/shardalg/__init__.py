"""shardalg: the sharding and placement algebra of distributed training.

Which rank holds which slice of every tensor under PyTorch DTensor placements, ZeRO and
Megatron flat partitions, expert-parallel layouts; verified plans that move a whole model state
between any two layouts; and executors that run them over numpy arrays and torch tensors in one
process (execute_local) or across processes over torch.distributed (shardalg.torch.reshard).

    >>> import shardalg
    >>> layout = shardalg.MeshLayout.parse("dp=4,tp=2", "_S(0,2),S(0)", (14336, 4096))
    >>> layout.shard_info(5).local_shape
    (1792, 4096)

Errors are shardalg.Error (a ValueError) and name the bad value.
"""

from ._shardalg import (  # noqa: F401  (the C++ core, re-exported)
    BoundLocalExecution, Checkpoint, Collective, CollectiveProgram, CostModel, DeviceMesh, Error, ExpertMetadata, FlatFragment,
    FlatLayout, IntegerOverflowError, LayoutComparison, LintFinding, LocalExecution, LoweredProgram, LoweredStep, MeshLayout,
    ModelLayout, ModelReshardPlan, ModelSpec, ModelTensor, ParallelGroups, ParamGroup, ParseError, Placement, RankHoldings,
    RankPart, ReduceOp, Relabeling, ScaleFactors, ShardInfo, TensorLayoutInfo, Tile, TileDifference, Transfer, TransferList,
    autoep_groups, compare_layouts, deepspeed_dbe_groups, deepspeed_groups, deepspeed_scale, deepspeed_tp_groups,
    dcp_read_items, dtype_names, element_bytes, expert_metadata, expert_metadata_of_ranks, expert_parallel_layout, first_difference,
    format_placements, fsdp1_scale, fsdp2_scale,
    fsdp_over_tp_label, fsdp_over_tp_physical, layout_model, lint_layout, load_model, lower_reshard, megatron_groups,
    megatron_scale, model_from_zoo, model_zoo_names, parse_placements, partition, relabel_destination,
    torchtitan_groups, torchtitan_scale, verify_destination, verify_plan, zero3_autoep_scale,
)
from . import _shardalg
from . import _buffers

__version__ = "0.1.0"


def _local_buffers(self, rank, like=None):
    """A rank's buffers under this layout, zeroed, keyed by buffer name (`buffer_names`): a
    tensor's local tile (shaped as the tile), or a flat partition that several tensors share
    (1-D). `like`: numpy (default) or torch. A rank outside a tensor's layout gets an empty buffer.
    """
    library = _buffers.resolve_like(like)
    names = self.buffer_names
    return {names[b]: _buffers.zeros(shape, dtype, library, f"buffer '{names[b]}'")
            for b, (dtype, shape) in enumerate(self._buffer_shapes(rank))}


def _scatter(self, rank, tensors):
    """Rank `rank`'s buffers (as local_buffers makes them, numpy or torch like the tensors) holding
    its part of `tensors`, a dict of whole tensors by name (every tensor of the layout)."""
    _require_names(self, tensors, "scatter")
    buffers = _local_buffers(self, rank, _buffers.like_of(tensors.values()))
    for name, key in _buffer_keys(self).items():
        _shardalg._copy_held(self, name, rank, _buffers.raw(tensors[name], f"tensor '{name}'"),
                             _buffers.raw(buffers[key], f"rank {rank}'s buffer '{key}'", writable=True), True)
    return buffers


def _gather(self, buffers_by_rank):
    """The whole tensors, a dict by name, from every rank's buffers ({rank: {buffer name: array}},
    keyed as local_buffers keys them). Every rank of the layout must be given; a Partial tensor
    cannot be gathered (its values are not reduced)."""
    missing = [r for r in self.ranks if r not in buffers_by_rank]
    if missing:
        raise Error(f"gather: no buffers for ranks {missing} of the layout")
    first = next(iter(buffers_by_rank.values()), {})
    library = _buffers.like_of(first.values())
    out = {}
    keys = _buffer_keys(self)
    for info in self.tensors:
        if any(p.is_partial() for p in info.placement_layout.placements):
            raise Error(f"gather: tensor '{info.name}' is Partial ({info.placement_layout}); its ranks hold unreduced values")
        whole = _buffers.zeros(info.shape, info.dtype, library, f"tensor '{info.name}'")
        key = keys[info.name]
        for rank, buffers in buffers_by_rank.items():
            if key not in buffers:
                raise Error(f"gather: rank {rank}'s buffers lack '{key}' (tensor '{info.name}')")
            _shardalg._copy_held(self, info.name, rank, _buffers.raw(whole, f"tensor '{info.name}'", writable=True),
                                 _buffers.raw(buffers[key], f"rank {rank}'s buffer '{key}'"), False)
        out[info.name] = whole
    return out


def _buffer_keys(layout):
    """{tensor name: the name of the buffer that holds it}, in the layout's tensor order."""
    names = layout.buffer_names
    return {name: names[layout._buffer_index(name)] for name in layout.tensor_names}


def _require_names(layout, tensors, what):
    names = set(layout.tensor_names)
    missing = [n for n in layout.tensor_names if n not in tensors]
    extra = sorted(set(tensors) - names)
    if missing or extra:
        raise Error(f"{what}: tensors missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                    f"not in the layout {extra[:5]}{'...' if len(extra) > 5 else ''}")


ModelLayout.local_buffers = _local_buffers
ModelLayout.scatter = _scatter
ModelLayout.gather = _gather


def rank_buffers(layout, rank, buffers, what, writable, device="cpu"):
    """One rank's buffers, a dict by buffer name, as raw (address, bytes, dtype) triples in the
    layout's buffer order; Error naming a missing or unknown buffer."""
    names = layout.buffer_names
    if not isinstance(buffers, dict):
        raise Error(f"{what}: rank {rank}'s buffers must be a dict by buffer name, not {type(buffers).__name__}")
    unknown = sorted(set(buffers) - set(names))
    if unknown:
        raise Error(f"{what}: rank {rank} has buffers {unknown} that the layout does not have (its buffers: {names[:4]}...)")
    shapes = layout._buffer_shapes(rank)
    out = []
    for b, name in enumerate(names):
        if name in buffers:
            out.append(_buffers.raw(buffers[name], f"{what}: rank {rank}'s buffer '{name}'", writable, device))
        elif shapes[b][1] == (0,):
            out.append((0, 0, shapes[b][0]))  # the rank holds nothing of it
        else:
            raise Error(f"{what}: rank {rank} lacks buffer '{name}'")
    return out


def _bind_local(self, sources, destinations):
    """Binds every rank's buffers, {rank: {buffer name: array}} keyed as ModelLayout.local_buffers
    keys them (numpy arrays or torch CPU tensors; bf16 and fp16 through torch), for repeated runs:
    the returned object's run() moves the bytes they hold then. The arrays are kept alive by it and
    must not be resized meanwhile."""
    plan = self.plan
    src = {rank: rank_buffers(plan.source, rank, b, "execute_local: source", False) for rank, b in sources.items()}
    dst = {rank: rank_buffers(plan.destination, rank, b, "execute_local: destination", True) for rank, b in destinations.items()}
    bound = self._bind(src, dst)
    bound.arrays = (sources, destinations)
    return bound


def _run_local(self, sources, destinations):
    """Runs every rank's part from `sources` into `destinations` (as bind takes them). Nothing is
    copied into shardalg: each byte moves once, source box to destination box. Every buffer is
    checked against the plan before anything moves. Returns byte counts."""
    return self.bind(sources, destinations).run()


LocalExecution.bind = _bind_local
LocalExecution.run = _run_local


def execute_local(plan, sources, destinations, threads=None):
    """Runs every rank's part of `plan` once in this process (LocalExecution(plan, threads).run:
    build a LocalExecution to run one plan repeatedly). `threads`: default one per core."""
    return LocalExecution(plan, threads or 0).run(sources, destinations)


def _load_checkpoint(self, layout, rank, like=None, threads=4, memory_limit=256 << 20):
    """Rank `rank`'s part of the checkpoint under `layout` (a ModelLayout over tensors of this
    checkpoint, e.g. layout_model(ck.model(), "fsdp dp=8")): its buffers, as local_buffers makes
    them (numpy by default, torch with like="torch"), read straight from the files on `threads`
    threads with at most `memory_limit` bytes of bounce buffers. The rank reads all it needs
    itself; ranks of a job that replicate tensors read each stored byte once with
    shardalg.torch.load_checkpoint (read_plan lists its reads and forwards)."""
    buffers = layout.local_buffers(rank, like)
    raw = rank_buffers(layout, rank, buffers, "checkpoint load", writable=True)
    self._load(layout, rank, raw, threads, memory_limit)
    return buffers


def _read_tensor(self, name, like=None, threads=4):
    """One whole tensor of the checkpoint (numpy, or torch with like="torch"), assembled from its
    chunks."""
    if name not in self.tensor_names:
        raise Error(f"checkpoint: no tensor '{name}' (it has {len(self.tensor_names)} tensors)")
    model = self.model()
    layout = layout_model(ModelSpec(model.name, [t for t in model.tensors if t.name == name]), "replicated")
    return _load_checkpoint(self, layout, 0, like, threads)[layout.buffer_of(name)]


Checkpoint.load = _load_checkpoint
Checkpoint.read_tensor = _read_tensor
