"""The issue-19 fault runs of benchmarks/watch_soak.py, small: they keep working and keep their checks honest."""
from benchmarks.watch_soak import retagged
from benchmarks.watch_soak_faults import faults_run, reuse_run
from tests.fixtures.watch import free_port, make_video


def test_faults_run_survives_corrupt_frames_in_place_model_truncation_dead_broker_and_escaping_hook(tmp_path,
                                                                                                   tiny_models_dir):
    video = make_video(tmp_path / "v.avi", n=150)
    fp32 = (tiny_models_dir / "tiny_classifier_fp32.tflite").read_bytes()
    r = faults_run(video, fp32, retagged(fp32, "overwritten"), tmp_path, 150, free_port(), escapes=2, fps=100)
    assert r["died"] is None and r["ran_to_end"], r
    assert r["ok"] + r["error"] + r["dropped"] == r["sent"] == 150 and r["each_frame_once"]
    assert r["corrupt_frames"] == 2 == r["corrupt_frames_logged_as_error"] == r["error"]
    assert r["truncated_at"] is not None and r["overwritten_at"] is not None
    assert r["model_reload_failures"] >= 1 and r["model_reloads"] >= 1 and r["sha_after_overwrite_differs"]
    assert r["mqtt"]["published"] == 0 and r["mqtt"]["unsent"] > 0
    assert r["escaped_children"] >= 1 and r["hook"]["run"] > r["escaped_children"]
    assert r["passed"], r


def test_reuse_run_inspects_every_part_written_into_a_reused_file_name(tmp_path, tiny_classifier_tflite):
    r = reuse_run(tiny_classifier_tflite, tmp_path, versions=24, slots=4)
    assert r["ok"] == r["sent"] == 24 and r["each_frame_once"] and r["verdicts_follow_the_new_part"], r
    assert r["passed"], r
