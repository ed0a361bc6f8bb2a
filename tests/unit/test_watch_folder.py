"""Folder source: files still being written are waited for, each file is delivered exactly once."""
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edge.watch.sources import FolderSource, SourceError
from tests.fixtures.watch import GREY, RED, drain_folder, write_png


def _png_bytes(tmp_path, color=RED):
    p = write_png(tmp_path / "full.png", color, size=(96, 128))
    data = p.read_bytes()
    p.unlink()
    return data


def test_half_written_png_waits_until_complete_then_once(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    data = _png_bytes(tmp_path)
    part = cam / "part.png"
    part.write_bytes(data[: len(data) // 2])
    src = FolderSource(cam, poll=0.01, settle_timeout=30, size=(32, 32))
    src.open()
    assert drain_folder(src, 4) == []  # stable size but does not decode: still being written
    assert src.pending == 1
    part.write_bytes(data)  # the camera finishes the file
    items = drain_folder(src, 3)
    assert [i.source_id for i in items] == [str(part.resolve())]
    assert items[0].error is None and items[0].rgb.shape == (32, 32, 3)
    assert drain_folder(src, 3) == []  # never delivered twice


def test_growing_file_is_not_read_until_size_is_stable(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    data = _png_bytes(tmp_path)
    part = cam / "g.png"
    src = FolderSource(cam, settle_timeout=30)
    src.open()
    for k in range(1, 4):
        part.write_bytes(data[: len(data) * k // 4])
        src._scan()
        assert src._ready == []
    part.write_bytes(data)
    assert len(drain_folder(src, 2)) == 1


def test_never_completing_file_becomes_an_error_not_a_skip(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    (cam / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    src = FolderSource(cam, settle_timeout=0.2)
    src.open()
    assert drain_folder(src, 2) == []
    time.sleep(0.25)
    items = drain_folder(src, 1)
    assert len(items) == 1 and "broken.png" in items[0].error and "incomplete after" in items[0].error


def test_arrival_order_existing_skip_and_restart_memory(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    old = write_png(cam / "old.png", GREY)
    done = write_png(cam / "done.png", GREY)
    src = FolderSource(cam, existing="skip", done={str(done.resolve())})
    src.open()
    assert src.skipped_existing == 1
    now = time.time()
    for name, age in (("z_first.png", 30), ("a_second.png", 20), ("m_third.png", 10)):
        p = write_png(cam / name, RED)
        os.utime(p, (now - age, now - age))
    (cam / ".tmp_writing.png").write_bytes(b"x")  # writers' temp files are ignored
    (cam / "notes.txt").write_text("not an image")
    got = [i.source_id.rsplit("/", 1)[1] for i in drain_folder(src, 3)]
    assert got == ["z_first.png", "a_second.png", "m_third.png"]
    assert old.exists()

    # A restart with --existing process: what the log says was handled is not inspected again.
    handled = {str(done.resolve())} | {str((cam / n).resolve()) for n in got}
    again = FolderSource(cam, existing="process", done=handled)
    again.open()
    assert [i.source_id.rsplit("/", 1)[1] for i in drain_folder(again, 3)] == ["old.png"]


def test_read_blocks_until_a_file_arrives_and_stops_on_request(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    src = FolderSource(cam, poll=0.02)
    src.open()
    stop = threading.Event()
    threading.Timer(0.1, lambda: write_png(cam / "late.png", GREY)).start()
    item = src.read(stop)
    assert item.source_id.endswith("late.png") and item.rgb is not None
    threading.Timer(0.1, stop.set).start()
    assert src.read(stop) is None


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such folder"):
        FolderSource(tmp_path / "nope")
