"""Regression tests for the ways a demanding user broke `watch` (issue 19), on real files and tiny models."""
import os
import time

import pytest

from edge.watch.log import read_log
from edge.watch.service import Service, WatchConfig
from edge.watch.sources import FolderSource
from tests.fixtures.watch import GREY, RED, drain_folder, run_in_thread, write_png


def _items(log):
    return [r for r in read_log(log) if "status" in r]


def _wait(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_reused_file_name_is_a_new_part_and_is_inspected_again(tmp_path):
    # issue 19.2: seen files were keyed by path only, so part.png overwritten was never inspected again.
    cam = tmp_path / "cam"
    cam.mkdir()
    part = write_png(cam / "part.png", GREY)
    src = FolderSource(cam, settle_timeout=30)
    src.open()
    first = drain_folder(src)
    assert len(first) == 1 and first[0].error is None
    assert drain_folder(src) == []  # the same version is not delivered twice
    write_png(tmp_path / "next.png", RED, size=(50, 64))
    os.replace(tmp_path / "next.png", part)  # the camera writes the next part under the same name
    again = drain_folder(src)
    assert [i.path for i in again] == [str(part.resolve())] and again[0].version != first[0].version
    st = part.stat()
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # rewritten in place, same size
    assert len(drain_folder(src)) == 1


def test_file_name_reuse_through_the_service_and_across_a_restart(tmp_path, tiny_classifier_tflite):
    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    write_png(cam / "part.png", GREY)
    write_png(cam / "other.png", GREY)
    cfg = dict(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), poll=0.02, quiet=True)
    svc = Service(WatchConfig(**cfg))
    t, box = run_in_thread(svc)
    _wait(lambda: len(_items(log)) == 2, what="first parts")
    write_png(tmp_path / "cracked.png", RED, size=(50, 64))
    os.replace(tmp_path / "cracked.png", cam / "part.png")  # a cracked part under the reused name
    _wait(lambda: len(_items(log)) == 3, what="the reused name")
    svc.request_stop("test")
    t.join(10)
    verdicts = [(os.path.basename(r["source"]), r["verdict"]) for r in _items(log)]
    assert sorted(verdicts[:2]) == [("other.png", "good"), ("part.png", "good")]
    assert verdicts[2] == ("part.png", "defective")
    # While the service is down the camera reuses the name once more; a restart inspects that version
    # and nothing else.
    write_png(tmp_path / "p3.png", GREY, size=(52, 64))
    os.replace(tmp_path / "p3.png", cam / "part.png")
    summary = Service(WatchConfig(**cfg, max_items=1)).run(install_signals=False)
    assert summary["inspected"] == 1
    assert [os.path.basename(r["source"]) for r in _items(log)][3:] == ["part.png"]


def test_a_tiny_image_in_the_folder_is_an_error_at_once(tmp_path):
    cam = tmp_path / "cam"
    cam.mkdir()
    write_png(cam / "dot.png", RED, size=(1, 1))
    src = FolderSource(cam, settle_timeout=60, size=(32, 32))
    src.open()
    items = drain_folder(src, 2)
    assert len(items) == 1 and "far smaller than the model input 32x32" in items[0].error


def test_existing_skip_after_a_restart_keeps_what_the_last_run_left_unfinished(tmp_path, tiny_classifier_tflite):
    # issue 19.4: files still settling (or queued) at the stop were thrown away by --existing skip.
    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    full = write_png(tmp_path / "full.png", RED, size=(96, 128)).read_bytes()
    (cam / "slow.png").write_bytes(full[: len(full) // 2])  # the camera is still writing it
    cfg = dict(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), poll=0.02, quiet=True,
               settle_timeout=60)
    svc = Service(WatchConfig(**cfg))
    t, box = run_in_thread(svc)
    _wait(lambda: svc.source.pending == 1, what="slow.png seen")
    time.sleep(0.1)
    svc.request_stop("test")
    t.join(10)
    stop = [r for r in read_log(log) if r.get("event") == "stop"][-1]
    assert stop["pending"] == [str((cam / "slow.png").resolve())]
    (cam / "slow.png").write_bytes(full)  # finished while we were down
    write_png(cam / "arrived_while_down.png", GREY)  # --existing skip: really skipped
    summary = Service(WatchConfig(**cfg, existing="skip", max_items=1)).run(install_signals=False)
    assert summary["inspected"] == 1
    got = [(os.path.basename(r["source"]), r["verdict"]) for r in _items(log)]
    assert got == [("slow.png", "defective")]
    start = [r for r in read_log(log) if r.get("event") == "start"][-1]
    assert start["skipped_existing"] == 1


def test_video_with_corrupt_frames_reads_on_and_numbers_frames_from_the_stream(tmp_path, tiny_classifier_tflite):
    # issue 19.3: after a failed read the source seeked (back to a keyframe): 47 items for 40 frames,
    # and the last frames never inspected.
    from tests.fixtures.watch import corrupt_video_frames, make_video

    clip = corrupt_video_frames(make_video(tmp_path / "clip.avi", n=40), [10, 11, 25])
    log = tmp_path / "v.jsonl"
    summary = Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(clip), log=str(log),
                                  quiet=True)).run(install_signals=False)
    items = _items(log)
    assert [r["source"] for r in items] == [f"video:{i}" for i in range(40)]  # once each, in order, to the end
    bad = [int(r["source"].split(":")[1]) for r in items if r["status"] == "error"]
    assert bad == [10, 11, 25] and all("could not be decoded" in items[i]["error"] for i in bad)
    ok = [r for r in items if r["status"] == "ok"]
    # frame i is red when i % 3 == 2: the verdicts prove every frame kept its own number
    assert all((r["verdict"] == "defective") == (int(r["source"].split(":")[1]) % 3 == 2) for r in ok)
    assert summary["sent"] == 40 == summary["ok"] + summary["errors"] and summary["errors"] == 3


def test_video_without_a_frame_count_stops_after_failures_in_a_row_without_inventing_frames(tmp_path):
    from edge.watch.sources import VideoSource
    from tests.fixtures.watch import corrupt_video_frames, make_video

    class NoCount(VideoSource):  # some containers/streams report no frame count
        def open(self):
            super().open()
            self.frame_count = 0

    clip = corrupt_video_frames(make_video(tmp_path / "clip.avi", n=20), [5])
    src = NoCount(clip)
    stop = __import__("threading").Event()
    got = []
    while (item := src.read(stop)) is not None:
        got.append((item.source_id, item.error is None))
    assert [s for s, _ in got] == [f"video:{i}" for i in range(20)]
    assert [s for s, good in got if not good] == ["video:5"]


@pytest.mark.parametrize("field,value", [
    ("poll", 0), ("poll", -1), ("threads", 0), ("threads", 1000), ("hook_timeout", 0),
    ("settle_timeout", float("nan")), ("fps", float("inf")), ("queue", 0), ("reload_interval", 0),
    ("retry_initial", -1), ("status_every", 0), ("log_keep", 0), ("metrics_port", 70000),
])
def test_numeric_options_are_range_checked(field, value):
    # issue 19.21: 'watch --poll 0' spun a core at 100 %; nothing was range-checked.
    from edge.errors import EdgeInspectError

    with pytest.raises(EdgeInspectError, match=f"--{field.replace('_', '-')} "):
        WatchConfig(model="m.tflite", source="cam", **{field: value})


def test_watch_cli_refuses_a_zero_poll_before_starting(tmp_path):
    from click.testing import CliRunner

    from edge.cli import main

    (tmp_path / "cam").mkdir()
    for args, why in ((["--poll", "0"], "--poll 0"), (["--hook-timeout", "-1"], "--hook-timeout -1"),
                      (["--threads", "0"], "--threads")):
        r = CliRunner().invoke(main, ["watch", "--model", str(tmp_path / "m.tflite"), "--source",
                                      str(tmp_path / "cam"), *args])
        assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output, r.output


def test_a_full_disk_under_the_log_stops_with_one_line_a_summary_and_exit_3(tmp_path, tiny_classifier_tflite,
                                                                          monkeypatch):
    # issue 19.7: the service died with 3 chained tracebacks, exit 1, no summary.
    import errno

    from click.testing import CliRunner

    from edge.cli import EXIT_RESTART, main

    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    for i in range(3):
        write_png(cam / f"p{i}.png", GREY)
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # the disk fills up after the start line and the first result
        if os.readlink(f"/proc/self/fd/{fd}") == str(log):
            calls.append(fd)
            if len(calls) > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = CliRunner().invoke(main, ["watch", "--model", str(tiny_classifier_tflite), "--source", str(cam),
                                  "--log", str(log), "--poll", "0.02", "-q"])
    assert r.exit_code == EXIT_RESTART == 3, r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "watch summary: " in r.output and "No space left on device" in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "free disk space" in errors[0] and "exit 3" in errors[0]


def test_a_restart_after_log_rotation_does_not_inspect_rotated_away_files_again(tmp_path, tiny_classifier_tflite):
    # issue 19.5: the restart memory lived only in the retained log files; 73 files were inspected again.
    from edge.watch.log import log_files

    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    for i in range(40):
        write_png(cam / f"p{i:02d}.png", GREY)
    cfg = dict(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), poll=0.02, quiet=True,
               log_max_mb=0.003, log_keep=1)
    first = Service(WatchConfig(**cfg, max_items=40)).run(install_signals=False)
    assert first["inspected"] == 40 and first["log_rotations"] > 3
    retained = {r["source"] for r in _items(log)}
    assert len(retained) < 40 and len(log_files(log)) == 2  # most result lines are gone
    write_png(cam / "new.png", RED)
    again = Service(WatchConfig(**cfg, max_items=1)).run(install_signals=False)
    assert again["inspected"] == 1
    last = [r for r in _items(log)][-1]
    assert os.path.basename(last["source"]) == "new.png" and last["verdict"] == "defective"


def test_what_the_folder_source_ignores_is_reported_once_and_recursive_watches_subfolders(tmp_path):
    # issue 19.14: subfolders, .jfif and extension-less files were ignored without a word.
    cam = tmp_path / "cam"
    (cam / "line2").mkdir(parents=True)
    write_png(cam / "a.png", GREY)
    write_png(cam / "line2" / "b.png", RED)
    (cam / "photo.jfif").write_bytes(b"\xff\xd8")
    (cam / "IMG_0001").write_bytes(b"\xff\xd8")
    (cam / ".partial.png").write_bytes(b"x")  # writers' temp files stay silent
    said = []
    src = FolderSource(cam, on_ignored=lambda p, why: said.append((os.path.basename(p), why)))
    src.open()
    assert [os.path.basename(i.path) for i in drain_folder(src)] == ["a.png"]
    assert sorted(n for n, _ in said) == ["IMG_0001", "line2", "photo.jfif"]  # once each, over 3+ scans
    assert "--recursive" in dict(said)["line2"] and "not an image extension" in dict(said)["photo.jfif"]
    deep = FolderSource(cam, recursive=True)
    deep.open()
    assert sorted(os.path.basename(i.path) for i in drain_folder(deep)) == ["a.png", "b.png"]


def test_the_service_logs_ignored_files(tmp_path, tiny_classifier_tflite):
    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    (cam / "notes.txt").write_text("x")
    write_png(cam / "a.png", GREY)
    Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), poll=0.02, quiet=True,
                        max_items=1)).run(install_signals=False)
    ignored = [r for r in read_log(log) if r.get("event") == "ignored"]
    assert [os.path.basename(r["source"]) for r in ignored] == ["notes.txt"]
