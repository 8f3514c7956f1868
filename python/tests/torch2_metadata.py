"""Rewrites a DCP `.metadata` saved by torch 1.13 as torch 2.x's FileSystemWriter pickles it.

Only torch 1.13 installs on Debian 12, so torch 2.x's record classes are declared here with the
module paths, fields and pickled state torch 2.x gives them (torch.distributed.checkpoint.metadata
and .filesystem: Metadata with storage_meta and version, StorageMeta, TensorProperties pickled as
a tuple with _MEM_FORMAT_ENCODING, MetadataIndex, _StorageInfo leaving out fields that are None),
and Python's own pickle.dump writes the file. Run in a process of its own: it installs those
modules.

    python3 torch2_metadata.py SOURCE DESTINATION [--transforms]

--transforms records transform descriptors (compression) on the first storage item, which
torch 2.x writes for transformed items and shardalg does not read.
"""

import dataclasses
import enum
import os
import pickle
import sys
import types
from typing import Any, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from torch_compat import import_torch_checkpointing  # noqa: E402

import torch  # noqa: E402

METADATA = "torch.distributed.checkpoint.metadata"
FILESYSTEM = "torch.distributed.checkpoint.filesystem"


def _module(name, classes):
    module = types.ModuleType(name)
    for cls in classes:
        cls.__module__ = name
        setattr(module, cls.__name__, cls)
    sys.modules[name] = module
    return module


@dataclasses.dataclass
class ChunkStorageMetadata:
    offsets: torch.Size
    sizes: torch.Size


class _MEM_FORMAT_ENCODING(enum.Enum):
    TORCH_CONTIGUOUS_FORMAT = 0
    TORCH_CHANNELS_LAST = 1
    TORCH_PRESERVE_FORMAT = 2


@dataclasses.dataclass
class TensorProperties:
    dtype: Any
    layout: Any = torch.strided
    requires_grad: bool = False
    memory_format: Any = torch.contiguous_format
    pin_memory: bool = False

    def __getstate__(self):  # torch.memory_format does not pickle: torch stores its encoding
        return (self.dtype, self.layout, self.requires_grad, _MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT, self.pin_memory)

    def __setstate__(self, state):
        self.dtype, self.layout, self.requires_grad, _, self.pin_memory = state
        self.memory_format = torch.contiguous_format


@dataclasses.dataclass
class TensorStorageMetadata:
    properties: TensorProperties
    size: torch.Size
    chunks: list


@dataclasses.dataclass
class BytesStorageMetadata:
    pass


@dataclasses.dataclass
class StorageMeta:
    checkpoint_id: Optional[str] = None
    save_id: Optional[str] = None
    load_id: Optional[str] = None
    modules: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Metadata:
    state_dict_metadata: dict
    planner_data: Any = None
    storage_data: Any = None
    storage_meta: Optional[StorageMeta] = None
    version: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class MetadataIndex:
    fqn: str
    offset: Optional[torch.Size] = None
    index: Optional[int] = dataclasses.field(hash=False, compare=False, default=None)


@dataclasses.dataclass
class _StorageInfo:
    relative_path: str
    offset: int
    length: int
    transform_descriptors: Optional[list] = None

    def __getstate__(self):  # torch 2.x leaves out what is None
        return {k: v for k, v in self.__dict__.items() if v is not None}


def install():
    package = types.ModuleType("torch.distributed.checkpoint")
    package.__path__ = []
    sys.modules[package.__name__] = package
    package.metadata = _module(METADATA, [ChunkStorageMetadata, _MEM_FORMAT_ENCODING, TensorProperties, TensorStorageMetadata,
                                          BytesStorageMetadata, StorageMeta, Metadata, MetadataIndex])
    package.filesystem = _module(FILESYSTEM, [_StorageInfo])


def as_torch2(old, transforms=False):
    """torch 1.13's Metadata as torch 2.x's."""
    state = {}
    for name, md in old.state_dict_metadata.items():
        if hasattr(md, "chunks"):
            properties = TensorProperties(md.properties.dtype, md.properties.layout, md.properties.requires_grad,
                                          torch.contiguous_format, md.properties.pin_memory)
            state[name] = TensorStorageMetadata(properties, md.size, [ChunkStorageMetadata(c.offsets, c.sizes) for c in md.chunks])
        else:
            state[name] = BytesStorageMetadata()
    storage = {}
    for k, (key, info) in enumerate(old.storage_data.items()):
        descriptors = ["zstd"] if transforms and k == 0 else None
        storage[MetadataIndex(key.fqn, key.offset, key.index)] = _StorageInfo(info.relative_path, info.offset, info.length, descriptors)
    meta = StorageMeta(checkpoint_id="/checkpoints/step-100", save_id="3f1c", load_id=None, modules=[])
    return Metadata(state, None, storage, meta, "1.0.0")


def main(source, destination, transforms=False):
    import_torch_checkpointing()  # torch 1.13's classes, to read the source
    with open(source, "rb") as f:
        old = pickle.load(f)
    install()
    new = as_torch2(old, transforms)
    data = pickle.dumps(new)
    assert pickle.loads(data) == new  # torch 2.x's loader reads it back as written
    with open(destination, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--transforms" in sys.argv[3:])
