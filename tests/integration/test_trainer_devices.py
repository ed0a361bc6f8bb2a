"""Device strategies, exercised on CPU: logical CPU split -> MirroredStrategy, TF_CONFIG, GPU errors."""
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.common import ROOT
from tests.fixtures.trainer import tiny_train_config

pytestmark = pytest.mark.slow

MIRRORED = r"""
import json, sys
from trainer.devices import split_cpu, select_strategy
split_cpu(2)
choice = select_strategy("auto")
from tests.fixtures.trainer import tiny_train_config
from trainer.train import train_classifier
cfg = tiny_train_config(sys.argv[1], sys.argv[2], sys.argv[3], alpha=0.35, weights=None, epochs=1,
                        fine_tune_epochs=1, aug_copies=0, batch_size=4)
run = train_classifier(cfg, progress=False)
m = json.load(open(f"{run}/metrics.json"))
print(json.dumps({"name": choice.name, "replicas": choice.replicas, "kind": choice.kind,
                  "strategy": m["strategy"], "epochs": {k: len(v["loss"]) for k, v in m["histories"].items()}}))
"""

MULTI_WORKER = r"""
import json
from trainer.devices import select_strategy
c = select_strategy("auto")
print(json.dumps({"name": c.name, "replicas": c.replicas}))
"""


def _run(code, *args, env=None):
    full_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", **(env or {})}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                       env=full_env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_two_logical_cpus_train_with_mirrored_strategy(tiny_manifest_supervised, tmp_path):
    root, manifest = tiny_manifest_supervised
    out = _run(MIRRORED, root, manifest, tmp_path)
    assert out["name"] == out["strategy"] == "MirroredStrategy" and out["replicas"] == 2 and out["kind"] == "cpu"
    assert out["epochs"] == {"head": 1, "fine_tune": 1}


def test_tf_config_selects_multi_worker():
    tf_config = {"cluster": {"worker": ["localhost:0"]}, "task": {"type": "worker", "index": 0}}
    out = _run(MULTI_WORKER, env={"TF_CONFIG": json.dumps(tf_config)})
    assert out == {"name": "MultiWorkerMirroredStrategy", "replicas": 1}


def test_cpu_and_auto_choose_default_and_gpu_without_gpu_is_a_clear_error():
    from trainer.devices import DeviceError, select_strategy

    for device in ("cpu", "auto"):
        c = select_strategy(device)
        assert c.name == "default" and c.kind == "cpu" and not c.mixed_precision and c.replicas == 1
    with pytest.raises(DeviceError, match="--device gpu: TensorFlow sees no GPU"):
        select_strategy("gpu")
    with pytest.raises(DeviceError, match="unknown"):
        select_strategy("npu")


def test_accelerator_path_trains_on_images_with_mixed_precision_and_saves_float32(
        tiny_manifest_supervised, tmp_path, monkeypatch):
    """The GPU/TPU branch (tf.data + on-the-fly augmentation + mixed_float16), run on CPU by a stand-in choice."""
    import keras

    import trainer.devices as devices
    from trainer.train import train_classifier

    real = devices.select_strategy

    def as_if_gpu(device="auto", tpu=None):
        choice = real("cpu")
        choice.kind, choice.mixed_precision, choice.description = "gpu", True, "stand-in GPU"
        return choice

    monkeypatch.setattr(devices, "select_strategy", as_if_gpu)
    root, manifest = tiny_manifest_supervised
    lines = []
    run = train_classifier(tiny_train_config(root, manifest, tmp_path, epochs=1, fine_tune_epochs=1, batch_size=8),
                           progress=lines.append)
    assert keras.mixed_precision.global_policy().name == "float32"      # restored after training
    assert not any(line.startswith("cache:") for line in lines)          # no feature cache on accelerators
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["histories"]) == {"head", "fine_tune"} and m["device"] == "stand-in GPU"
    from trainer.layers import load_model

    model = load_model(run / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
