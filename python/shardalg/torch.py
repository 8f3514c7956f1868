"""shardalg.torch: one rank's part of a shardalg plan, run over a torch.distributed process group.

Every rank of the group calls reshard(plan, sources, destinations) with its own buffers (keyed as
ModelLayout.local_buffers keys them). The C++ engine derives this rank's byte stream per peer
from the plan alone (sender and receiver agree without exchanging metadata), and moves it with
batched isend/irecv on the group; local copies run while messages fly, Partial sources are
reduced, and every wait is bounded.

    import shardalg, shardalg.torch
    plan = shardalg.ModelReshardPlan(shardalg.layout_model(model, "zero3 dp=4"),
                                     shardalg.layout_model(model, "fsdp-tp dp=2,tp=2"))
    stats = shardalg.torch.reshard(plan, my_sources, my_destinations)

Plan ranks are ranks of `group` (the default group when None). Two executors run a part:
- "engine" (CPU buffers: torch CPU tensors, numpy arrays): the C++ engine over the group's
  point-to-point calls (gloo), with rounds under a memory limit;
- "tensor" (device tensors, e.g. CUDA with NCCL; or any torch tensors when asked): the same
  streams built with tensor operations on the buffers' device (strided views, copies and
  in-place reductions), exchanged with one batch_isend_irecv.
Every rank of the group must run the same executor (the ranks check that they agree).
"""

import datetime

import torch
import torch.distributed as dist

from . import Error, RankPart, _buffers, _shardalg, rank_buffers

_NO_FAILURE = 2**62
_MESSAGE_BYTES = 4096


def _global_rank(group, rank):
    if group is None or group is dist.GroupMember.WORLD:
        return rank
    to_global = getattr(dist, "get_global_rank", None) or dist.distributed_c10d._get_global_rank
    return to_global(group, rank)


class _Communicator:
    """The engine's communicator over torch.distributed. NCCL needs a round's sends and receives
    issued together (batch_isend_irecv, one NCCL group: separate calls could deadlock), so they
    are issued when the engine first waits; other backends (gloo) start each one as it is posted,
    so that messages fly while the engine copies this rank's local boxes."""

    def __init__(self, group, rank):
        self.group = group
        self.rank = rank
        self._batched = dist.get_backend(group) == "nccl"
        self._ops = []        # P2POps posted and not yet issued
        self._posted = []     # their entries, in the same order
        self._receives = []   # [peer, bytes, work] of this round's receives, in posting order
        self._sends = []      # [peer, bytes, work] of this round's sends
        self._next_receive = 0

    def all_max(self, values, timeout):
        t = torch.tensor(values, dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        return t.tolist()

    def _post(self, op, view, peer, tag, entries):
        tensor = torch.frombuffer(view, dtype=torch.uint8) if len(view) else torch.empty(0, dtype=torch.uint8)
        entry = [peer, len(view), None]
        entries.append(entry)
        if not self._batched:
            entry[2] = op(tensor, _global_rank(self.group, peer), self.group, tag)
            return
        self._ops.append(dist.P2POp(op, tensor, _global_rank(self.group, peer), self.group, tag))
        self._posted.append(entry)

    def post_receive(self, view, peer, tag):
        self._post(dist.irecv, view, peer, tag, self._receives)

    def post_send(self, view, peer, tag):
        self._post(dist.isend, view, peer, tag, self._sends)

    def wait_receive(self, timeout):
        self._issue()
        if self._next_receive >= len(self._receives):
            raise Error(f"reshard: rank {self.rank} waited for a receive, but none is pending")
        index = self._next_receive
        peer, size, work = self._receives[index]
        self._wait(work, timeout, f"{size} bytes from rank {peer}")
        self._next_receive += 1
        return index

    def wait_sends(self, timeout):
        self._issue()
        for peer, size, work in self._sends:
            self._wait(work, timeout, f"its send of {size} bytes to rank {peer}")
        self._receives, self._sends, self._next_receive = [], [], 0

    def _issue(self):
        if self._ops:
            for entry, work in zip(self._posted, dist.batch_isend_irecv(self._ops)):
                entry[2] = work
            self._ops, self._posted = [], []

    def _wait(self, work, timeout, what):
        _wait(work, timeout, f"reshard: rank {self.rank} waited {timeout} s for {what}")


def _message_of(failed, rank, message, group):
    """The failed rank's message (its first _MESSAGE_BYTES bytes), broadcast to every rank."""
    text = torch.zeros(_MESSAGE_BYTES, dtype=torch.uint8)
    if failed == rank:
        encoded = message.encode()[:_MESSAGE_BYTES]
        text[:len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    dist.broadcast(text, src=_global_rank(group, failed), group=group)
    return bytes(text.tolist()).rstrip(b"\0").decode(errors="replace")


def _agree(rank, message, executor, group, what="reshard"):
    """Every rank learns whether any rank failed its checks, and the lowest such rank's message
    (one all-reduce when all passed: the lowest failing rank wins the max of _NO_FAILURE - rank;
    then a broadcast of its message), and whether all ranks chose the same executor."""
    vote = torch.tensor([_NO_FAILURE - rank if message else 0, executor == "engine", executor == "tensor"], dtype=torch.int64)
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
    if vote[0].item() == 0:
        if vote[1].item() and vote[2].item():
            return f"{what}: ranks chose different executors (engine and tensor); every rank must run the same one"
        return None
    failed = _NO_FAILURE - int(vote[0].item())
    return f"{what}: rank {failed} failed its checks: {_message_of(failed, rank, message, group)}"


def agreement(group=None):
    """How the ranks of `group` (default: the world) agree on failure when they share work, such
    as Checkpoint.reshard(..., process=rank, processes=world, agree=shardalg.torch.agreement()):
    a function that takes this rank's failure ("" when it succeeded) and returns on every rank the
    lowest failing rank's message as "process R: ...", or "" when none failed."""
    rank = dist.get_rank(group)

    def agree(failure):
        vote = torch.tensor([_NO_FAILURE - rank if failure else 0], dtype=torch.int64)
        dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
        if vote.item() == 0:
            return ""
        failed = _NO_FAILURE - int(vote.item())
        return f"process {failed}: {_message_of(failed, rank, failure, group)}"

    return agree


def _identity(op, dtype):
    """The value a Partial destination starts from (as exec/reduce_arithmetic.hpp's identity_value)."""
    if op in ("sum", "avg"):
        return 0
    if op == "product":
        return 1
    if dtype.is_floating_point:
        return float("inf") if op == "min" else float("-inf")
    info = torch.iinfo(dtype)
    return info.max if op == "min" else info.min


def _reduce_into(target, values, op, contributors):
    """target op= values, element by element (as exec/reduce_arithmetic.hpp's reduce_value)."""
    if op == "sum":
        target.add_(values)
    elif op == "avg":
        target.add_(values / contributors if target.is_floating_point() else torch.div(values, contributors, rounding_mode="trunc"))
    elif op == "product":
        target.mul_(values)
    elif op == "min":
        torch.minimum(target, values, out=target)
    else:
        torch.maximum(target, values, out=target)


def _box_view(buffers, box, typed=False):
    """A box (RankPart's form) as a strided view of its buffer: bytes, or with `typed` elements of
    the buffer's dtype (for reductions)."""
    _, buffer, base, shape, strides, row_bytes, element_bytes, _ = box
    data = buffers[buffer].view(-1)
    if typed:
        return data.as_strided(tuple(shape) + (row_bytes // element_bytes,), tuple(s // element_bytes for s in strides) + (1,),
                               data.storage_offset() + base // element_bytes)
    raw = data.view(torch.uint8)
    return raw.as_strided(tuple(shape) + (row_bytes,), tuple(strides) + (1,), raw.storage_offset() + base)


def _box_bytes(box):
    count = box[5]
    for extent in box[3]:
        count *= extent
    return count


class _TensorReshard:
    """This rank's part run with tensor operations on the buffers' device: every box of the part is
    a strided view of its buffer, messages are packed into and unpacked from one staging tensor
    each (the engine's byte streams: boxes at their stream offsets), and a round's messages go out
    in one batch_isend_irecv (one NCCL group)."""

    def __init__(self, plan, part, sources, destinations, group, rank, timeout):
        self.group, self.rank, self.timeout = group, rank, timeout
        names_in, names_out = plan.source.buffer_names, plan.destination.buffer_names
        self.sources = [sources.get(n) for n in names_in]
        self.destinations = [destinations.get(n) for n in names_out]
        device = next((t.device for t in self.sources + self.destinations if t is not None and t.numel()), torch.device("cpu"))
        ops = plan.reduce_ops()
        dtypes = [getattr(torch, _buffers.DTYPE_TO_TORCH[info.dtype]) for info in plan.source.tensors]
        boxes = part._boxes()

        view, box_bytes = _box_view, _box_bytes
        # Per message: (peer, stream bytes, [(view of the box in its buffer, stream offset, bytes, ...)]).
        self.sends = [(peer, size, [(view(self.sources, b), start, box_bytes(b)) for b, start in zip(bs, starts)])
                      for peer, size, bs, starts in boxes["sends"]]
        self.receives = []
        for peer, size, bs, starts in boxes["receives"]:
            entries = []
            for b, start in zip(bs, starts):
                op = ops[b[0]]
                entries.append((view(self.destinations, b, typed=op is not None), start, box_bytes(b), op, b[7], dtypes[b[0]]))
            self.receives.append((peer, size, entries))
        self.local = []
        for a, b in boxes["local"]:
            op = ops[a[0]]
            self.local.append((view(self.sources, a, typed=op is not None), view(self.destinations, b, typed=op is not None), op, b[7]))
        self.identity = [(view(self.destinations, b, typed=True), _identity(ops[b[0]], dtypes[b[0]])) for b in boxes["identity"]]
        self.staging_in = [torch.empty(size, dtype=torch.uint8, device=device) for _, size, _ in self.receives]
        self.staging_out = [torch.zeros(size, dtype=torch.uint8, device=device) for _, size, _ in self.sends]

    def run(self):
        for target, value in self.identity:
            target.fill_(value)
        ops = []
        for (peer, _, _), staging in zip(self.receives, self.staging_in):
            ops.append(dist.P2POp(dist.irecv, staging, _global_rank(self.group, peer), self.group))
        sent = 0
        for (peer, size, entries), staging in zip(self.sends, self.staging_out):
            for box, start, length in entries:
                staging[start:start + length].view(box.shape).copy_(box)
            ops.append(dist.P2POp(dist.isend, staging, _global_rank(self.group, peer), self.group))
            sent += size
        works = dist.batch_isend_irecv(ops) if ops else []
        local = 0
        for source, target, op, contributors in self.local:
            if op:
                _reduce_into(target, source, op, contributors)
            else:
                target.copy_(source)
            local += source.numel() * source.element_size()
        received = 0
        for k, ((peer, size, entries), staging) in enumerate(zip(self.receives, self.staging_in)):
            _wait(works[k], self.timeout, f"reshard: rank {self.rank} waited {self.timeout} s for {size} bytes from rank {peer}")
            for box, start, length, op, contributors, dtype in entries:
                stream = staging[start:start + length]
                if op:
                    _reduce_into(box, stream.view(dtype).view(box.shape), op, contributors)
                else:
                    box.copy_(stream.view(box.shape))
            received += size
        for k, (peer, size, _) in enumerate(self.sends):
            _wait(works[len(self.receives) + k], self.timeout, f"reshard: rank {self.rank} waited {self.timeout} s for its send to rank {peer}")
        return {"bytes_sent": sent, "bytes_received": received, "bytes_local": local, "rounds": 1, "peak_staging": sent + received}


def _wait(work, timeout, what):
    try:
        work.wait(datetime.timedelta(seconds=timeout))
    except RuntimeError as e:
        raise Error(f"{what}: {e}") from None


class PreparedReshard:
    """This rank's part of a plan, checked and agreed with the other ranks once, run as often as
    needed (a framework resharding every step): run() moves the bytes the buffers hold then. The
    buffers are kept alive by it and must not be resized meanwhile. Made by prepare()."""

    def __init__(self, engine, buffers):
        self._engine = engine
        self._buffers = buffers

    def run(self):
        """Runs the reshard once on every rank of the group (each calls run). Returns this rank's byte counts."""
        return self._engine.run()


def prepare(plan, sources, destinations, group=None, *, part=None, timeout=300.0, memory_limit=0, progress=None, executor=None):
    """Checks this rank's buffers, agrees with every rank of `group` (default: the world) that all
    passed, and returns a PreparedReshard. Every rank of the group calls it.

    sources / destinations: this rank's buffers, {buffer name: tensor} as
    plan.source.local_buffers(rank) / plan.destination.local_buffers(rank) key them (torch CPU
    tensors or numpy arrays; a rank outside a layout passes {}). `part`: RankPart(plan, rank), to
    share one between preparations. `timeout`: seconds any wait may take. `memory_limit`: staging
    bytes per round (0: none). `progress(received, total)`: called as bytes arrive (the engine).
    `executor`: "engine" or "tensor" (default: "tensor" when a buffer is a device tensor).

    A bad buffer on one rank fails every rank with an Error naming that rank and the buffer,
    before any byte moves.
    """
    if not dist.is_initialized():
        raise Error("reshard: torch.distributed is not initialized (call torch.distributed.init_process_group first)")
    rank = dist.get_rank(group)
    message = ""
    src = dst = None
    buffers = list(sources.values()) + list(destinations.values()) if isinstance(sources, dict) and isinstance(destinations, dict) else []
    devices = {b.device.type for b in buffers if _buffers.is_torch_tensor(b)}
    device = next(iter(devices - {"cpu"}), "cpu")
    if executor is None:
        executor = "tensor" if device != "cpu" else "engine"
    try:
        if executor not in ("engine", "tensor"):
            raise Error(f"reshard: unknown executor '{executor}' (engine, tensor)")
        if executor == "tensor" and not all(_buffers.is_torch_tensor(b) for b in buffers):
            raise Error("reshard: the tensor executor needs every buffer to be a torch tensor")
        if executor == "tensor" and (memory_limit or progress is not None):
            raise Error("reshard: memory_limit and progress are the engine's; the tensor executor moves each message whole")
        if executor == "engine" and device != "cpu":
            raise Error(f"reshard: the engine runs on host memory; buffers on {device} need executor='tensor'")
        if part is None:
            part = RankPart(plan, rank)
        elif part.rank != rank:
            raise Error(f"reshard: the part is rank {part.rank}'s; this process is rank {rank} of the group")
        src = rank_buffers(plan.source, rank, sources, "reshard: source", False, device)
        dst = rank_buffers(plan.destination, rank, destinations, "reshard: destination", True, device)
        _shardalg._check_part(part, src, dst)
    except Error as e:
        message = str(e)
    failure = _agree(rank, message, executor, group)
    if failure:
        raise Error(failure)
    if executor == "tensor":
        return PreparedReshard(_TensorReshard(plan, part, sources, destinations, group, rank, float(timeout)), (sources, destinations))
    engine = _shardalg._TorchReshard(plan, part, src, dst, _Communicator(group, rank), float(timeout), int(memory_limit), progress)
    return PreparedReshard(engine, (sources, destinations))


def reshard(plan, sources, destinations, group=None, **options):
    """Runs this rank's part of `plan` once over the process group `group` (default: the world):
    prepare(plan, sources, destinations, group, **options).run(). Every rank of the group calls it.
    Returns this rank's byte counts."""
    return prepare(plan, sources, destinations, group, **options).run()


def load_checkpoint(checkpoint, layout, group=None, *, threads=4, memory_limit=256 << 20, timeout=300.0):
    """This rank's part of `checkpoint` (a shardalg.Checkpoint) under `layout` (a ModelLayout over
    its tensors, e.g. layout_model(ck.model(), "replicated ranks=8")), loaded by every rank of
    `group` (default: the world) together, so that each stored byte is read from storage once:
    where ranks replicate a box, each reads its torch.chunk share of it (dim 0) and sends that to
    the other replicas, which receive it straight into their buffers (Checkpoint.read_plan lists
    both; a box that is not one contiguous range of its buffer goes through a staging copy).
    Layout ranks are ranks of the group. Every rank of the group calls it.

    Returns (buffers, stats): the rank's torch CPU tensors keyed as layout.local_buffers keys them,
    and {"bytes_read", "bytes_sent", "bytes_received"}. threads and memory_limit are the file
    reader's (Checkpoint.load); `timeout`: seconds any wait may take. A failure on any rank (an
    unreadable or inconsistent file, a layout the checkpoint cannot fill, a layout with more
    ranks than the group) fails every rank with an Error naming that rank and its error, before
    any forward is posted."""
    if not dist.is_initialized():
        raise Error("load_checkpoint: torch.distributed is not initialized (call torch.distributed.init_process_group first)")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    message, buffers, loaded = "", {}, {"bytes_read": 0, "sends": [], "receives": []}
    try:
        ranks = layout.ranks
        if ranks and ranks[-1] >= world:
            raise Error(f"load_checkpoint: the layout uses ranks 0..{ranks[-1]}; the group has {world}")
        buffers = layout.local_buffers(rank, "torch")
        raw = rank_buffers(layout, rank, buffers, "load_checkpoint", True)
        loaded = checkpoint._load(layout, rank, raw, threads, int(memory_limit), True)
    except Error as e:
        message = str(e)
    failure = _agree(rank, message, "engine", group, "load_checkpoint")
    if failure:
        raise Error(failure)
    # Each box of a message goes as its own point-to-point message, tagged with its place in the
    # stream order both sides share: a box that is one contiguous range of its buffer (a replica
    # share of a row-major tile or of a flat partition) is sent from and received into the buffer
    # itself; only other boxes are staged, one at a time. So memory stays the buffers'.
    ordered = [buffers.get(n) for n in layout.buffer_names]
    ops, staged, sent, received = [], {}, 0, 0  # staged: receive index -> (box view, staging)
    for peer, _, boxes, _ in loaded["receives"]:
        for tag, box in enumerate(boxes):
            view = _box_view(ordered, box)
            if view.is_contiguous():
                target = view.reshape(-1)
            else:
                target = torch.empty(_box_bytes(box), dtype=torch.uint8)
                staged[len(ops)] = (view, target)
            ops.append(dist.P2POp(dist.irecv, target, _global_rank(group, peer), group, tag))
            received += _box_bytes(box)
    receive_count = len(ops)
    for peer, _, boxes, _ in loaded["sends"]:
        for tag, box in enumerate(boxes):
            view = _box_view(ordered, box)
            ops.append(dist.P2POp(dist.isend, view.reshape(-1) if view.is_contiguous() else view.contiguous().reshape(-1),
                                  _global_rank(group, peer), group, tag))
            sent += _box_bytes(box)
    works = dist.batch_isend_irecv(ops) if ops else []
    for k in range(receive_count):
        _wait(works[k], timeout, f"load_checkpoint: rank {rank} waited {timeout} s for a forward from rank {ops[k].peer}")
        if k in staged:
            view, target = staged[k]
            view.copy_(target.view(view.shape))
    for k in range(receive_count, len(works)):
        _wait(works[k], timeout, f"load_checkpoint: rank {rank} waited {timeout} s for its forward to rank {ops[k].peer}")
    return buffers, {"bytes_read": loaded["bytes_read"], "bytes_sent": sent, "bytes_received": received}
