"""benchmarks/backends.py's camera frames: a BGR frame goes down watch's bgr=True path, and the warm-frame
timing reports every frame as a ratio to the invoke of the same run."""
import numpy as np

from benchmarks.backends import BgrFrame, _predict_frame, frames_for, time_e2e_warm


def test_a_bgr_frame_is_predicted_like_the_rgb_frame_it_came_from(tiny_classifier_tflite):
    from edge.runtime import EdgeModel

    m = EdgeModel(tiny_classifier_tflite, threads=1)
    img = np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    frames = frames_for(img, m.input_size, sizes=((640, 480),), jpeg_sizes=(), bgr_sizes=((640, 480),))
    assert isinstance(frames["640x480 bgr"], BgrFrame)
    assert np.array_equal(frames["640x480 bgr"].array, frames["640x480"][..., ::-1])
    rgb, bgr = _predict_frame(m, frames["640x480"]), _predict_frame(m, frames["640x480 bgr"])
    assert rgb.score == bgr.score and (rgb.verdict, rgb.defect_type) == (bgr.verdict, bgr.defect_type)
    # the swap matters: the BGR array taken as RGB is another image
    assert not np.array_equal(m.pixels(frames["640x480 bgr"].array), m.pixels(frames["640x480"]))


def test_warm_timing_has_a_row_per_frame(tiny_classifier_tflite):
    from edge.runtime import EdgeModel

    m = EdgeModel(tiny_classifier_tflite, threads=1)
    img = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frames = frames_for(img, m.input_size, sizes=((640, 480),), jpeg_sizes=(), bgr_sizes=((640, 480),))
    res = time_e2e_warm(m, frames, calls=3, rounds=2)
    assert list(res["e2e_ms"]) == list(frames) == list(res["ratio"])
    assert res["invoke_ms"] > 0 and all(v > 0 for v in res["ratio"].values())
    assert "2 rounds x 3" in res["method"]
