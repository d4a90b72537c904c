"""The volume a chunked run reads: opened lazily, and named by a small picklable source
so that each worker process opens the file itself."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import InputError
from ..stack import Stack


def open_volume(path, *, channel=None, time_point=None, voxel_size=None, allow_incomplete=False) -> Stack:
    """The stack at ``path`` with one channel and time point selected, its data left lazy
    where the format allows it (OME-Zarr / Zarr / TIFF: a Dask array)."""
    from ..io import open_stack

    stack = open_stack(path, voxel_size=voxel_size, allow_incomplete=allow_incomplete, lazy=True)
    stack = stack.select(channel=channel, time=time_point)
    if stack.data.ndim != 3:
        raise InputError(f"'{path}' is a 2D image; chunked analysis is for 3D volumes. Leave out --chunked.")
    return stack


@dataclass(frozen=True)
class VolumeSource:
    """Where a task finds the volume: the input path and the channel/time chosen. Small and
    picklable; each worker process opens the file once (lazily, :func:`opened`)."""

    path: str
    channel: int | None = None
    time_point: int | None = None
    voxel_size: tuple | None = None

    @property
    def shape(self):
        return opened(self).data.shape

    def __getitem__(self, key):
        return opened(self).data[key]


@functools.lru_cache(maxsize=4)
def opened(source: VolumeSource):
    """The lazily opened stack of ``source`` (one per process)."""
    return open_volume(source.path, channel=source.channel, time_point=source.time_point,
                       voxel_size=source.voxel_size)
