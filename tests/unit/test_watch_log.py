"""The JSONL result log: rotation by rename and restarts never lose or duplicate a line."""
import json
import os

from edge.watch.log import JsonlLog, log_files, read_log


def test_rotation_keeps_every_line_once_and_in_order(tmp_path):
    path = tmp_path / "r.jsonl"
    log = JsonlLog(path, max_bytes=2000, keep=50)
    for i in range(300):
        log.write({"source": f"f{i}", "status": "ok", "pad": "x" * (i % 17)})
    log.close()
    files = log_files(path)
    assert len(files) > 5 and log.rotations == len(files) - 1
    assert all(os.path.getsize(p) <= 2000 for p in files)
    got = [r["source"] for r in read_log(path)]
    assert got == [f"f{i}" for i in range(300)]


def test_restart_appends_and_old_files_beyond_keep_are_removed(tmp_path):
    path = tmp_path / "r.jsonl"
    for run in range(3):  # three service runs appending to the same log
        log = JsonlLog(path, max_bytes=1500, keep=3)
        for i in range(40):
            log.write({"source": f"r{run}-{i}", "status": "ok"})
        log.close()
    files = log_files(path)
    assert len(files) == 4  # current + keep=3 rotated
    got = [r["source"] for r in read_log(path)]
    assert len(got) == len(set(got)), "a line was duplicated"
    # only the oldest lines were rotated away; what is kept is one contiguous tail
    expected = [f"r{run}-{i}" for run in range(3) for i in range(40)]
    assert got == expected[-len(got):] and got[-1] == "r2-39"


def test_torn_last_line_is_isolated_after_a_crash(tmp_path):
    path = tmp_path / "r.jsonl"
    log = JsonlLog(path)
    log.write({"source": "a", "status": "ok"})
    log.close()
    with open(path, "ab") as f:
        f.write(b'{"source": "b", "sta')  # power cut mid-write
    log = JsonlLog(path)
    log.write({"source": "c", "status": "ok"})
    log.close()
    assert [r["source"] for r in read_log(path)] == ["a", "c"]
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["source"] == "c"


def test_every_line_is_on_disk_before_write_returns(tmp_path):
    path = tmp_path / "r.jsonl"
    log = JsonlLog(path)
    log.write({"source": "a", "status": "ok"})
    # another process (a tailing dashboard) sees the complete line without close()
    assert json.loads(path.read_text().splitlines()[0])["source"] == "a"
    log.close()


def test_history_remembers_handled_files_and_files_left_queued_at_stop(tmp_path):
    from edge.watch.log import history

    path = tmp_path / "r.jsonl"
    log = JsonlLog(path)
    log.write({"source": "/c/a.png", "status": "ok"})
    log.write({"source": "/c/b.png", "status": "error", "error": "corrupt"})
    log.write({"source": "video:3", "status": "dropped"})
    log.write({"event": "stop", "pending": ["/c/c.png", "/c/d.png"]})
    log.write({"source": "/c/d.png", "status": "ok", "file_version": [7, 100, 123]})  # inspected by a later run
    log.close()
    done, carry = history(path)
    assert done == {"/c/a.png": None, "/c/b.png": None, "/c/d.png": (7, 100, 123)}  # path -> version handled
    assert carry == {"/c/c.png"}  # queued but never inspected: the next run must not skip it
    assert history(None) == ({}, set())
