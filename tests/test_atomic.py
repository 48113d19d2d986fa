"""``cglight.atomic``: a file appears whole or not at all.

Oracles: the folder's listing and the bytes on disk, read back with plain ``open``; the order in
which ``os.fsync`` and ``os.replace`` are called, recorded around the real calls.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from cglight import atomic
from cglight.atomic import atomic_path, atomic_write, partial_path, partial_target


class WriterFailed(Exception):
    pass


def test_text_and_bytes_land_whole_and_leave_nothing_else(tmp_path):
    atomic_write(tmp_path / "a.txt", "φ ψ\n")
    atomic_write(tmp_path / "sub" / "b.bin", b"\x00\x01\xff")  # the folder is made
    assert (tmp_path / "a.txt").read_bytes() == "φ ψ\n".encode()
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01\xff"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "sub"]


@pytest.mark.parametrize("existing", [None, b"the old, complete file"])
def test_a_writer_that_raises_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path, existing):
    target = tmp_path / "shard.h5"
    if existing is not None:
        target.write_bytes(existing)
    with pytest.raises(WriterFailed):
        with atomic_path(target) as tmp:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("pos", data=np.zeros((4, 3)))
            raise WriterFailed  # e.g. a non-finite value found half-way
    assert os.listdir(tmp_path) == ([] if existing is None else ["shard.h5"])
    if existing is not None:
        assert target.read_bytes() == existing


def test_a_path_writer_is_synced_before_the_rename(tmp_path, monkeypatch):
    calls, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else fd))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    target = tmp_path / "data.h5"
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=np.arange(5))
    tmp = partial_path(target)
    assert calls[0][0] == "fsync" and (calls[0][1] == str(tmp) or not Path("/proc/self/fd").is_dir())
    assert calls[1] == ("replace", str(tmp), str(target))
    with h5py.File(target, "r") as f:
        assert f["x"][:].tolist() == [0, 1, 2, 3, 4]


def test_temporary_names_are_per_process_and_told_apart():
    tmp = partial_path("/d/restart.pt")
    assert tmp == Path(f"/d/restart.pt.partial-{os.getpid()}")
    assert partial_target(tmp) == Path("/d/restart.pt")
    assert partial_target("ala2/topology.pdb.partial-77") == Path("ala2/topology.pdb")
    for other in ("restart.pt", "notes.partial-x", "a.partial-", ".partial-12"):
        assert partial_target(other) is None, other
