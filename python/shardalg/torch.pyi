"""Type stubs of shardalg.torch."""

from typing import Any, Callable

from . import Checkpoint, ModelLayout, ModelReshardPlan, RankPart

class PreparedReshard:
    """This rank's part of a plan, checked and agreed once, run as often as needed."""
    def run(self) -> dict[str, int]:
        """Runs the reshard once on every rank of the group. Returns this rank's byte counts."""

def prepare(plan: ModelReshardPlan, sources: dict[str, Any], destinations: dict[str, Any], group: Any = None, *,
            part: RankPart | None = None, timeout: float = 300.0, memory_limit: int = 0,
            progress: Callable[[int, int], None] | None = None, executor: str | None = None) -> PreparedReshard:
    """Checks this rank's buffers, agrees with every rank that all passed, and returns a PreparedReshard."""

def reshard(plan: ModelReshardPlan, sources: dict[str, Any], destinations: dict[str, Any], group: Any = None, *,
            part: RankPart | None = None, timeout: float = 300.0, memory_limit: int = 0,
            progress: Callable[[int, int], None] | None = None, executor: str | None = None) -> dict[str, int]:
    """Runs this rank's part of `plan` once over the process group `group` (default: the world)."""

def agreement(group: Any = None) -> Callable[[str], str]:
    """How the ranks of `group` agree on failure when they share work (Checkpoint.reshard's agree)."""

def load_checkpoint(checkpoint: Checkpoint, layout: ModelLayout, group: Any = None, *, threads: int = 4,
                    memory_limit: int = 268435456, timeout: float = 300.0) -> tuple[dict[str, Any], dict[str, int]]:
    """This rank's part of `checkpoint` under `layout`, loaded by every rank of `group` together so that each stored byte is read once."""
