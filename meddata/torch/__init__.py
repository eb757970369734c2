"""PyTorch loaders for meddata datasets: ``ds.torch(split, preset=...)`` → a ready DataLoader.

Streaming over the Parquet shards (local or any fsspec URL), exact epoch coverage across DDP
ranks × DataLoader workers, epoch-seeded shuffling, mid-epoch resume, a preprocessed uint8
cache, presets for reference models, and GPU feeding (pinned memory, side-stream copies).
"""

from meddata.torch.cache import ItemCache, default_cache_dir
from meddata.torch.plan import SampleError
from meddata.torch.presets import (
    PRESETS,
    ChexpertPreset,
    ImagePreset,
    Preset,
    TextPreset,
    XrvPreset,
    get_preset,
    pad_sequences,
    register_preset,
    uncertainty,
)
from meddata.torch.stream import MeddataLoader, StreamingDataset, make_loader
from meddata.torch.train import quick_train

__all__ = [
    "PRESETS",
    "ChexpertPreset",
    "ImagePreset",
    "ItemCache",
    "MeddataLoader",
    "Preset",
    "SampleError",
    "StreamingDataset",
    "TextPreset",
    "XrvPreset",
    "default_cache_dir",
    "get_preset",
    "make_loader",
    "pad_sequences",
    "quick_train",
    "register_preset",
    "uncertainty",
]
