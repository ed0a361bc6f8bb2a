"""watch --decode-threads: FFmpeg decodes a video file or stream with the thread count asked (1 by default,
so frame threads do not decode on beside inference), and the frames are the same as with FFmpeg's choice."""
import numpy as np
import pytest

from edge.watch.config import ConfigError, WatchConfig, default
from edge.watch.sources import VideoSource, make_source
from edge.watch.sources import video as video_mod
from tests.fixtures.watch import read_all, textured_video


def mp4v_clip(path, n=6):
    return textured_video(path, n=n, size=(320, 240), fourcc="mp4v", shift=8)  # motion: P-frames do real work


def test_the_source_asks_ffmpeg_for_the_decoder_threads_given(tmp_path):
    import cv2

    clip = mp4v_clip(tmp_path / "clip.avi")
    for n in (1, 3):
        src = VideoSource(str(clip), decode_threads=n)
        src.open()
        try:
            assert src.cap.get(cv2.CAP_PROP_N_THREADS) == n
        finally:
            src.close()


def test_one_decoder_thread_gives_the_frames_ffmpegs_own_choice_gives(tmp_path):
    clip = mp4v_clip(tmp_path / "clip.avi")
    one, auto = read_all(VideoSource(str(clip), decode_threads=1)), read_all(VideoSource(str(clip), decode_threads=0))
    assert [i.source_id for i in one] == [i.source_id for i in auto] == [f"video:{k}" for k in range(6)]
    assert all(a.error is None and np.array_equal(a.full_rgb(), b.full_rgb()) for a, b in zip(one, auto))


def test_one_default_reaches_the_cli_and_the_source(tmp_path):
    from click.testing import CliRunner

    from edge.watch.cli import watch

    assert default("decode_threads") == 1 == VideoSource(str(mp4v_clip(tmp_path / "c.avi", n=1))).decode_threads
    assert make_source(str(tmp_path / "c.avi"), decode_threads=4).decode_threads == 4
    opt = next(p for p in watch.params if p.name == "decode_threads")
    assert opt.default == default("decode_threads")
    out = CliRunner().invoke(watch, ["--help"]).output
    assert "--decode-threads" in out


def test_the_service_opens_its_video_source_with_the_configured_decoder_threads(tmp_path, tiny_classifier_tflite):
    import cv2

    from edge.watch.service import Service

    clip = mp4v_clip(tmp_path / "clip.avi")
    for n in (default("decode_threads"), 2):
        svc = Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(clip), log=str(tmp_path / f"{n}.jsonl"),
                                  quiet=True, decode_threads=n))
        svc.source.open()
        try:
            assert svc.source.cap.get(cv2.CAP_PROP_N_THREADS) == n
        finally:
            svc.source.close()


def test_a_negative_thread_count_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match=r"--decode-threads -1: must be a finite number >= 0"):
        WatchConfig(model="m.tflite", source="line.avi", decode_threads=-1)


def test_a_camera_index_is_opened_without_ffmpeg_options(monkeypatch):
    calls = []

    class Closed:
        def isOpened(self):
            return False

        def release(self):
            pass

    def fake_capture(cv2, target, decode_threads=None):
        calls.append((target, decode_threads))
        return Closed()

    monkeypatch.setattr(video_mod, "capture", fake_capture)
    from edge.watch.sources import SourceDisconnected

    with pytest.raises(SourceDisconnected):
        VideoSource("7", decode_threads=2).open()
    assert calls == [(7, None)]  # V4L2 reads a camera, not FFmpeg: nothing to set


class FakeCapture:
    def __init__(self, args, opens):
        self.args, self.opens, self.released = args, opens, False

    def isOpened(self):
        return self.opens

    def release(self):
        self.released = True


def fake_cv2(refuse_params=False):
    class FakeCv2:
        CAP_ANY, CAP_PROP_N_THREADS = 0, 70
        made = []

        @classmethod
        def VideoCapture(cls, *args):
            cls.made.append(FakeCapture(args, opens=not (refuse_params and len(args) > 1)))
            return cls.made[-1]

    return FakeCv2


def test_capture_passes_the_thread_count_only_when_one_is_asked():
    cv2 = fake_cv2()
    for n in (None, 0, 2):
        video_mod.capture(cv2, "a.mp4", n)
    assert [c.args for c in cv2.made] == [("a.mp4",), ("a.mp4",), ("a.mp4", 0, [70, 2])]


def test_a_backend_that_refuses_the_thread_property_still_opens_the_source():
    cv2 = fake_cv2(refuse_params=True)
    cap = video_mod.capture(cv2, "rtsp://127.0.0.1/line", 1)
    assert cap.isOpened() and cap.args == ("rtsp://127.0.0.1/line",)
    assert [c.args for c in cv2.made] == [("rtsp://127.0.0.1/line", 0, [70, 1]), ("rtsp://127.0.0.1/line",)]
    assert cv2.made[0].released  # the refused capture is not leaked
