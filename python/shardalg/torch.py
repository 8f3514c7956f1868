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

Plan ranks are ranks of `group` (the default group when None). CPU tensors (gloo) run here;
device tensors are refused with an Error until the device path lands.
"""

import datetime

import torch
import torch.distributed as dist

from . import Error, RankPart, _shardalg, rank_buffers

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
        try:
            work.wait(datetime.timedelta(seconds=timeout))
        except RuntimeError as e:
            raise Error(f"reshard: rank {self.rank} waited {timeout} s for {what}: {e}") from None


def _agree_on_failure(rank, message, group):
    """Every rank learns whether any rank failed its checks, and the lowest such rank's message:
    one all-reduce when all passed (the lowest failing rank wins the max of _NO_FAILURE - rank),
    a broadcast of the message otherwise."""
    vote = torch.tensor([_NO_FAILURE - rank if message else 0], dtype=torch.int64)
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
    if int(vote.item()) == 0:
        return None
    failed = _NO_FAILURE - int(vote.item())
    text = torch.zeros(_MESSAGE_BYTES, dtype=torch.uint8)
    if failed == rank:
        encoded = message.encode()[:_MESSAGE_BYTES]
        text[:len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    dist.broadcast(text, src=_global_rank(group, failed), group=group)
    detail = bytes(text.tolist()).rstrip(b"\0").decode(errors="replace")
    return f"reshard: rank {failed} failed its checks: {detail}"


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


def prepare(plan, sources, destinations, group=None, *, part=None, timeout=300.0, memory_limit=0, progress=None):
    """Checks this rank's buffers, agrees with every rank of `group` (default: the world) that all
    passed, and returns a PreparedReshard. Every rank of the group calls it.

    sources / destinations: this rank's buffers, {buffer name: tensor} as
    plan.source.local_buffers(rank) / plan.destination.local_buffers(rank) key them (torch CPU
    tensors or numpy arrays; a rank outside a layout passes {}). `part`: RankPart(plan, rank), to
    share one between preparations. `timeout`: seconds any wait may take. `memory_limit`: staging
    bytes per round (0: none). `progress(received, total)`: called as bytes arrive.

    A bad buffer on one rank fails every rank with an Error naming that rank and the buffer,
    before any byte moves.
    """
    if not dist.is_initialized():
        raise Error("reshard: torch.distributed is not initialized (call torch.distributed.init_process_group first)")
    rank = dist.get_rank(group)
    message = ""
    src = dst = None
    try:
        if part is None:
            part = RankPart(plan, rank)
        elif part.rank != rank:
            raise Error(f"reshard: the part is rank {part.rank}'s; this process is rank {rank} of the group")
        src = rank_buffers(plan.source, rank, sources, "reshard: source", False)
        dst = rank_buffers(plan.destination, rank, destinations, "reshard: destination", True)
        _shardalg._check_part(part, src, dst)
    except Error as e:
        message = str(e)
    failure = _agree_on_failure(rank, message, group)
    if failure:
        raise Error(failure)
    engine = _shardalg._TorchReshard(plan, part, src, dst, _Communicator(group, rank), float(timeout), int(memory_limit), progress)
    return PreparedReshard(engine, (sources, destinations))


def reshard(plan, sources, destinations, group=None, **options):
    """Runs this rank's part of `plan` once over the process group `group` (default: the world):
    prepare(plan, sources, destinations, group, **options).run(). Every rank of the group calls it.
    Returns this rank's byte counts."""
    return prepare(plan, sources, destinations, group, **options).run()
