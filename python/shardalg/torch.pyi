"""Type stubs of shardalg.torch."""

from typing import Any, Callable

from . import ModelReshardPlan, RankPart

def reshard(plan: ModelReshardPlan, sources: dict[str, Any], destinations: dict[str, Any], group: Any = None, *,
            part: RankPart | None = None, timeout: float = 300.0, memory_limit: int = 0,
            progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Runs this rank's part of `plan` over the process group `group` (default: the world)."""
