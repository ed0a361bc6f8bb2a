"""MJPG video is read as raw packets and decoded like a JPEG file of the model's size (issue 18: the
reader thread's decode and the loop's resize were most of a 1080p frame's cost)."""

import numpy as np
import pytest
from PIL import Image

from edge.imageio import decode_jpeg, load_image
from edge.preprocess import to_model_input
from edge.watch.sources import VideoSource
from tests.fixtures.watch import read_all, textured_video


def test_mjpg_frames_decode_at_the_dct_scale_a_jpeg_file_of_the_same_bytes_gets(tmp_path):
    clip = textured_video(tmp_path / "clip.avi")
    items = read_all(VideoSource(clip, model_size=(48, 48)))
    assert [i.source_id for i in items] == [f"video:{k}" for k in range(4)] and all(i.error is None for i in items)
    for k, item in enumerate(items):
        assert item.jpeg[:2] == b"\xff\xd8"
        # 640x480 for a 48x48 model: DCT scale 1/4 (160x120 >= 2 x 48), not the full frame
        assert item.rgb.shape == (120, 160, 3)
        f = tmp_path / f"frame{k}.jpg"
        f.write_bytes(item.jpeg)
        # one source of truth: a frame and the same bytes saved as a file reach the model identically
        assert np.array_equal(to_model_input(item.rgb, (48, 48)), load_image(f, (48, 48)))


def test_without_a_model_size_or_for_other_codecs_frames_stay_full_size(tmp_path):
    import cv2

    clip = textured_video(tmp_path / "clip.avi", n=2)
    items = read_all(VideoSource(clip))
    assert all(i.full_rgb().shape == (480, 640, 3) and i.jpeg is None for i in items)
    png = tmp_path / "clip_png.avi"  # a lossless codec: no JPEG packets to scale
    vw = cv2.VideoWriter(str(png), cv2.VideoWriter_fourcc(*"PNG "), 10.0, (64, 48))
    if not vw.isOpened():
        pytest.fail("OpenCV cannot write a PNG-coded .avi")
    vw.write(np.zeros((48, 64, 3), np.uint8))
    vw.release()
    src = VideoSource(png, model_size=(16, 16))
    items = read_all(src)
    assert len(items) == 1 and items[0].full_rgb().shape == (48, 64, 3) and items[0].jpeg is None


def test_decode_jpeg_says_what_is_wrong_with_a_bad_packet():
    with pytest.raises(ValueError, match="not a JPEG frame"):
        decode_jpeg(b"\x00\x01\x02\x03", (32, 32))
    with pytest.raises(ValueError, match="corrupt JPEG frame"):
        decode_jpeg(b"\xff\xd8" + bytes(200), (32, 32))


def test_rejected_video_frames_are_saved_as_the_cameras_full_size_jpeg(tmp_path, tiny_classifier_tflite):
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from tests.fixtures.watch import make_video

    clip = make_video(tmp_path / "line.avi", n=6, size=(320, 240))
    rej, log = tmp_path / "rejects", tmp_path / "w.jsonl"
    Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(clip), log=str(log), rejects=str(rej),
                        quiet=True)).run(install_signals=False)
    items = [r for r in read_log(log) if "status" in r]
    bad = [r for r in items if r["verdict"] == "defective"]
    assert [r["source"] for r in bad] == ["video:2", "video:5"]
    for r in bad:
        with Image.open(r["reject"]) as im:
            assert im.format == "JPEG" and im.size == (320, 240)  # the camera's bytes, not the scaled decode


def test_frames_opencv_decodes_whole_reach_the_model_and_the_rejects_as_rgb(tmp_path, tiny_classifier_tflite):
    """A non-MJPG stream (H.264 from an IP camera; PNG here) arrives as OpenCV's BGR frame: it is kept as
    it is and the model swaps channels after its resize, so the full frame is converted only for a reject."""
    import cv2

    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig
    from tests.fixtures.watch import RED, make_video

    clip = make_video(tmp_path / "line.avi", n=6, size=(320, 240), fourcc="PNG ")
    items = read_all(VideoSource(clip, model_size=(48, 48)))
    assert all(i.rgb is None and i.bgr.shape == (240, 320, 3) and i.jpeg is None for i in items)
    frame = items[2]
    assert np.array_equal(frame.thumbnail_rgb(3), cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)[::3, ::3])
    assert tuple(frame.full_rgb()[120, 160]) == RED and frame.rgb is frame.full_rgb()  # converted once
    rej, log = tmp_path / "rejects", tmp_path / "w.jsonl"
    Service(WatchConfig(model=str(tiny_classifier_tflite), source=str(clip), log=str(log), rejects=str(rej),
                        quiet=True)).run(install_signals=False)
    recs = [r for r in read_log(log) if "status" in r]
    assert [r["source"] for r in recs if r["verdict"] == "defective"] == ["video:2", "video:5"]
    with Image.open([r for r in recs if r["source"] == "video:2"][0]["reject"]) as im:
        assert im.format == "PNG" and im.size == (320, 240) and im.getpixel((160, 120)) == RED


def test_the_live_page_keeps_an_rgb_thumbnail_of_an_opencv_frame_without_converting_it_whole():
    from edge.watch.sinks.ui import HEAT_PX, _keepable
    from edge.watch.sources.base import Item

    rgb = np.random.default_rng(5).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    item = Item("video:0", bgr=np.ascontiguousarray(rgb[..., ::-1]))
    k = -(-1920 // (2 * HEAT_PX))
    thumb = _keepable(item)
    assert k > 1 and item.rgb is None  # only the strided copy was swapped
    assert thumb.flags.c_contiguous and np.array_equal(thumb, rgb[::k, ::k])
    small = Item("video:1", rgb=rgb[:40, :40].copy())
    assert np.array_equal(_keepable(small), small.rgb) and _keepable(Item("video:2")) is None
