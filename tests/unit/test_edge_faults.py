"""Regression tests for issue 19 on the device side that need no model: atomic writes and their targets."""
import os
import stat
import threading

import pytest

from edge.atomic import atomic_write_bytes, atomic_write_json, check_writable


@pytest.fixture
def umask():
    def set_(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_
    os.umask(old)


def test_new_files_follow_the_umask_not_0600(tmp_path, umask):
    # issue 19.19: every atomically written file (exported models too) was mode 0600.
    umask(0o022)
    atomic_write_bytes(tmp_path / "model.tflite", b"x")
    assert stat.S_IMODE((tmp_path / "model.tflite").stat().st_mode) == 0o644
    umask(0o027)
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    p = tmp_path / "shared.json"
    p.write_text("{}")
    os.chmod(p, 0o664)
    atomic_write_bytes(p, b"{}\n")
    assert stat.S_IMODE(p.stat().st_mode) == 0o664 and p.read_bytes() == b"{}\n"


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write_bytes(tmp_path / "a.bin", b"1")
    assert synced == [False, True]  # the file, then its folder


def test_a_symlink_target_is_followed_and_stays_a_link(tmp_path):
    # issue 19.18: the writer replaced the link itself with a regular file.
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_a_fifo_is_written_directly_not_replaced(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    atomic_write_bytes(fifo, b'{"ok": true}')
    reader.join(10)
    assert got == [b'{"ok": true}'] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["results.fifo"]  # no stray temp file


def test_dash_means_stdout(capfdbinary):
    atomic_write_bytes("-", b"to stdout\n")
    assert capfdbinary.readouterr().out == b"to stdout\n"


def test_check_writable_fails_before_any_work(tmp_path):
    # issue 19.16: unwritable --json/--csv targets failed with a traceback after all the work.
    check_writable(tmp_path / "new" / "deeper" / "r.json")  # folders that will be created: fine
    check_writable("-")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "file.txt" / "r.json")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
    with pytest.raises(OSError):
        check_writable("/proc/edgeinspect-cannot-write-here.json")  # not writable even as root
