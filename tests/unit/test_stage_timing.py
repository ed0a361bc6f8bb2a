"""Where a prediction's time goes (preprocess / invoke / postprocess), in the watch status line and metrics."""
import types
import urllib.request

import numpy as np
import pytest

from edge.runtime import EdgeModel
from edge.watch.stats import Ring
from edge.watch.status import STAGES, status_line
from tests.fixtures.common import CORAL_DIR

CPU = CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite"


@pytest.fixture(scope="module")
def model():
    return EdgeModel(CPU, labels=CORAL_DIR / "imagenet_labels.txt", threads=1)


def test_every_predict_path_reports_three_stages_that_add_up(model):
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    px = model.pixels(frame)
    for p in (model.predict(CORAL_DIR / "cat.bmp"), model.predict_array(frame),
              model.predict_pixels(px, decode_ms=5.0)):
        assert set(p.stages_ms) == set(STAGES) and min(p.stages_ms.values()) >= 0
        assert sum(p.stages_ms.values()) == pytest.approx(p.latency_ms, abs=1e-6)
    assert p.stages_ms["preprocess"] >= 5.0  # the reader thread's decode counts as preprocessing


def test_status_line_shows_the_split():
    svc = types.SimpleNamespace(counts=dict(ok=3, errors=0, passed=2, failed=1, dropped=0), t_start=None,
                                latency=Ring(), stages={k: Ring() for k in STAGES}, feed=[], source_kind="video")
    assert "pre/inv/post -" in status_line(svc)
    for k, v in zip(STAGES, (1.25, 2.5, 0.125)):
        svc.stages[k].add(v)
    svc.latency.add(3.9)
    assert "pre/inv/post 1.2/2.5/0.1 ms" in status_line(svc)


def test_prometheus_has_one_histogram_per_stage(model):
    pytest.importorskip("prometheus_client")
    from edge.watch.sinks.prometheus import Metrics

    m = Metrics(0)
    try:
        m.handle({"status": "ok", "e2e_ms": 9.0}, model.predict(CORAL_DIR / "cat.bmp"), None)
        with urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        for stage in STAGES:
            assert f'edgeinspect_stage_latency_seconds_count{{stage="{stage}"}} 1.0' in text
    finally:
        m.close()


def test_watch_logs_the_backend_fastest_chose_and_sums_up_the_stages(tmp_path, tiny_classifier_tflite):
    pytest.importorskip("openvino")
    from PIL import Image

    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig

    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(cam / "part.png")
    cfg = WatchConfig(model=str(tiny_classifier_tflite), source=str(cam), log=str(log), backend="fastest",
                      quiet=True, max_items=1, poll=0.02)
    summary = Service(cfg).run(install_signals=False)
    start = next(r for r in read_log(log) if r.get("event") == "start")
    assert start["backend"] in ("litert", "openvino") and start["backend_choice"].endswith(f"-> {start['backend']}")
    assert set(summary["stages_ms"]) == set(STAGES) and summary["stages_ms"]["invoke"]["p50"] > 0
