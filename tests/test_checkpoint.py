"""Checkpoints: atomic writes, code-free loads, truncated files detected, fallback to the previous epoch.

Oracles: the saved objects themselves (round trip), files damaged on purpose (truncated, a pickled class, a
crash in the middle of ``torch.save``), and the folder listing after each save.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from simlabel_ext.train import checkpoint as ckpt
from simlabel_ext.train.checkpoint import (
    KEEP,
    CheckpointError,
    epoch_checkpoints,
    load_checkpoint,
    load_latest,
    save_atomic,
    save_epoch_checkpoint,
)


class Payload:
    """An arbitrary Python object: a weights-only load must refuse to build it."""

    def __init__(self, value):
        self.value = value


def state(k: int) -> dict:
    g = torch.Generator().manual_seed(k)
    return {
        "epoch": k,
        "weights": torch.randn(4, 3, generator=g),
        "labels": torch.randint(-1, 5, (6, 2), generator=g),
        "history": [{"loss": 0.5 / (k + 1), "best": math.inf, "note": f"epoch {k}", "ok": True, "none": None}],
        "nested": {"step": 10 * k, "pair": [1, 2.5]},
    }


def assert_state_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert isinstance(got[key], torch.Tensor) and got[key].dtype == value.dtype
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------------------------ one file
def test_save_atomic_round_trip(tmp_path):
    path = tmp_path / "sub" / "dir" / "state.pt"  # missing folders are created
    save_atomic(state(3), path)
    assert_state_equal(load_checkpoint(path), state(3))
    assert load_checkpoint(path, required=("epoch", "weights"))["epoch"] == 3
    assert leftovers(path.parent) == []
    save_atomic(state(4), path)  # overwrites
    assert_state_equal(load_checkpoint(path), state(4))
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]


def test_load_checkpoint_maps_to_cpu_and_keeps_plain_data(tmp_path):
    path = tmp_path / "s.pt"
    save_atomic({"x": torch.arange(3), "nan": math.nan, "text": "a\"b'c"}, path)
    loaded = load_checkpoint(path)
    assert loaded["x"].device.type == "cpu"
    assert math.isnan(loaded["nan"]) and loaded["text"] == "a\"b'c"


def test_required_keys(tmp_path):
    path = tmp_path / "s.pt"
    save_atomic({"model": {}, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"s\.pt lacks 'optimizer', 'store'"):
        load_checkpoint(path, required=("model", "optimizer", "store"))


def test_non_dict_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match=r"list\.pt does not hold a dict"):
        load_checkpoint(path)


def test_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": Payload(42)}, path)
    # the file is fine for an unrestricted load: what refuses it is weights_only
    assert torch.load(path, weights_only=False)["payload"].value == 42
    with pytest.raises(CheckpointError, match="evil.pt") as info:
        load_checkpoint(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "epoch-0003.pt"
    save_atomic(state(3), path)
    truncate(path)
    with pytest.raises(CheckpointError, match=r"epoch-0003\.pt is unreadable") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)  # one line
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt is unreadable"):
        load_checkpoint(garbage)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pt is unreadable"):
        load_checkpoint(empty)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")


def test_crash_during_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_atomic(state(1), path)
    before = path.read_bytes()
    real_save = torch.save
    written = []

    def crashing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # the whole file goes into the temporary file ...
        f.flush()
        written.append(os.fstat(f.fileno()).st_size)
        raise OSError("disk full")  # ... then the write fails before the rename

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic(state(2), path)
    assert written and written[0] > 0  # bytes really reached a temporary file
    assert path.read_bytes() == before
    assert_state_equal(load_checkpoint(path), state(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temporary file left


def test_interrupt_during_save_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def interrupted_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_epoch_checkpoint(state(0), tmp_path, 0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert load_latest(tmp_path) is None


def test_saved_file_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_atomic({"x": 1}, tmp_path / "s.pt")
        plain = tmp_path / "plain.pt"
        torch.save({"x": 1}, plain)
    finally:
        os.umask(old)
    assert (tmp_path / "s.pt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------------------------ epoch files
def test_save_epoch_checkpoint_keeps_the_two_newest(tmp_path):
    assert KEEP == 2
    for epoch in range(1, 6):
        path = save_epoch_checkpoint(state(epoch), tmp_path, epoch)
        assert path == tmp_path / f"epoch-{epoch:04d}.pt"
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [f"epoch-{e:04d}.pt" for e in range(max(1, epoch - 1), epoch + 1)]
    assert epoch_checkpoints(tmp_path) == [tmp_path / "epoch-0005.pt", tmp_path / "epoch-0004.pt"]
    assert_state_equal(load_checkpoint(tmp_path / "epoch-0004.pt"), state(4))


def test_epoch_files_sort_by_number_and_ignore_other_files(tmp_path):
    for name in ("epoch-0009.pt", "epoch-10000.pt", "epoch-0010.pt", "best.pt", "epoch-7.pt.bak",
                 ".epoch-0011.pt.abc.tmp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch-10000.pt", "epoch-0010.pt", "epoch-0009.pt"]
    assert epoch_checkpoints(tmp_path / "missing") == []


def test_load_latest_returns_the_newest(tmp_path):
    for epoch in (1, 2, 3):
        save_epoch_checkpoint(state(epoch), tmp_path, epoch)
    loaded, path = load_latest(tmp_path, required=("epoch", "weights"))
    assert path == tmp_path / "epoch-0003.pt"
    assert_state_equal(loaded, state(3))


def test_load_latest_falls_back_when_the_newest_is_truncated(tmp_path):
    for epoch in (6, 7):
        save_epoch_checkpoint(state(epoch), tmp_path, epoch)
    truncate(tmp_path / "epoch-0007.pt")
    with pytest.warns(UserWarning, match=r"epoch-0007\.pt is unreadable.*trying the previous checkpoint"):
        found = load_latest(tmp_path)
    loaded, path = found
    assert path == tmp_path / "epoch-0006.pt"
    assert_state_equal(loaded, state(6))


def test_load_latest_falls_back_when_the_newest_lacks_a_key(tmp_path):
    save_epoch_checkpoint(state(1), tmp_path, 1)
    save_epoch_checkpoint({"epoch": 2}, tmp_path, 2)
    with pytest.warns(UserWarning, match=r"epoch-0002\.pt lacks 'weights'"):
        loaded, path = load_latest(tmp_path, required=("epoch", "weights"))
    assert path.name == "epoch-0001.pt" and loaded["epoch"] == 1


def test_load_latest_all_unreadable(tmp_path):
    for epoch in (1, 2):
        save_epoch_checkpoint(state(epoch), tmp_path, epoch)
        truncate(tmp_path / f"epoch-{epoch:04d}.pt")
    with pytest.warns(UserWarning) as record, pytest.raises(CheckpointError, match=r"epoch-0001\.pt"):
        load_latest(tmp_path)
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    assert any("epoch-0002.pt" in m for m in messages) and any("epoch-0001.pt" in m for m in messages)


def test_load_latest_without_files(tmp_path):
    assert load_latest(tmp_path) is None
    assert load_latest(tmp_path / "does-not-exist") is None
    (tmp_path / "best.pt").write_bytes(b"")  # not an epoch checkpoint
    assert load_latest(tmp_path) is None


def test_a_checkpoint_holding_code_is_refused_as_such_and_its_code_never_runs(tmp_path):
    """A real malicious pickle (os.system in __reduce__): refused with a message that says it holds code and must
    not be loaded without weights_only (never torch's advice to load it with weights_only=False); the payload does
    not run, neither when loading it directly nor when resuming falls back past it."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "checkpoints"
    save_epoch_checkpoint(state(1), folder, 1)
    torch.save({**state(2), "payload": Exploit()}, folder / "epoch-0002.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(folder / "epoch-0002.pt")
    message = str(info.value)
    assert "epoch-0002.pt holds code (posix.system)" in message
    assert "must not be loaded without weights_only" in message and "weights_only=False" not in message
    assert "\n" not in message
    with pytest.warns(UserWarning, match=r"epoch-0002\.pt holds code.*trying the previous checkpoint"):
        loaded, path = load_latest(folder)
    assert path.name == "epoch-0001.pt" and loaded["epoch"] == 1
    assert not marker.exists()
