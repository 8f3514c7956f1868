"""Imports torch 1.13's distributed checkpointing on Python 3.11 and later.

Debian 12 ships torch 1.13 with Python 3.11, which refuses the dataclass field
`ShardedTensorMetadata.tensor_properties = field(default=TensorProperties())` (an unhashable
default, "mutable default ... use default_factory"), so `torch.distributed._shard` cannot be
imported at all; torch 2.x declares the field with default_factory. While torch's modules load,
such defaults are turned into factories that copy the value, which is what torch 2.x does. On
any other torch or Python nothing changes.
"""
import copy
import dataclasses


def import_torch_checkpointing():
    """Returns (planner_helpers, metadata) of DCP, from torch 2.x or 1.13."""
    original = dataclasses._get_field

    def lenient(cls, name, annotation, *rest):
        default = cls.__dict__.get(name, dataclasses.MISSING)
        if isinstance(default, dataclasses.Field) and default.default is not dataclasses.MISSING \
                and type(default.default).__hash__ is None:
            value = default.default
            default.default = dataclasses.MISSING
            default.default_factory = lambda: copy.copy(value)
        return original(cls, name, annotation, *rest)

    dataclasses._get_field = lenient
    try:
        try:  # torch 2.x
            from torch.distributed.checkpoint import planner_helpers, metadata
        except ImportError:  # torch 1.13
            from torch.distributed._shard.checkpoint import planner_helpers, metadata
    finally:
        dataclasses._get_field = original
    return planner_helpers, metadata
