"""Pick a tf.distribute strategy for ``--device auto|cpu|gpu|tpu`` (and ``--tpu ADDRESS``).

| situation                               | strategy                         | extras                  |
| --------------------------------------- | -------------------------------- | ----------------------- |
| ``--tpu ADDR`` or ``--device tpu``      | TPUStrategy                      |                         |
| ``TF_CONFIG`` set (multi-worker job)    | MultiWorkerMirroredStrategy      |                         |
| several GPUs                            | MirroredStrategy                 | mixed_float16           |
| one GPU                                 | OneDeviceStrategy(/gpu:0)        | mixed_float16           |
| CPU split into several logical devices  | MirroredStrategy over them       | (how tests exercise it) |
| CPU                                     | default strategy                 | features are cached     |

Models are built and compiled inside ``choice.strategy.scope()``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from edge.errors import EdgeInspectError
from trainer.tfutil import import_tf


class DeviceError(EdgeInspectError):
    pass


@dataclass
class DeviceChoice:
    strategy: object
    kind: str            # "cpu" | "gpu" | "tpu" | "multi-worker"
    name: str            # strategy class name, for logs and run.json
    replicas: int
    mixed_precision: bool
    description: str

    @property
    def accelerator(self) -> bool:
        return self.kind in ("gpu", "tpu")


def select_strategy(device="auto", tpu=None) -> DeviceChoice:
    tf = import_tf()
    device = (device or "auto").lower()
    if device not in ("auto", "cpu", "gpu", "tpu"):
        raise DeviceError(f"--device {device}: unknown; use auto, cpu, gpu or tpu")

    if tpu or device == "tpu":
        return _tpu(tf, tpu)
    if os.environ.get("TF_CONFIG") and device != "cpu":
        return _multi_worker(tf)

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError(
            "--device gpu: TensorFlow sees no GPU (tensorflow-cpu installed, or CUDA_VISIBLE_DEVICES hides it); "
            "use --device cpu, or install tensorflow[and-cuda]"
        )
    if gpus and device in ("auto", "gpu"):
        if len(gpus) > 1:
            s = tf.distribute.MirroredStrategy()
            return DeviceChoice(s, "gpu", "MirroredStrategy", s.num_replicas_in_sync, True,
                                f"{len(gpus)} GPUs, MirroredStrategy, mixed_float16")
        s = tf.distribute.OneDeviceStrategy("/gpu:0")
        return DeviceChoice(s, "gpu", "OneDeviceStrategy", 1, True, "1 GPU, OneDeviceStrategy, mixed_float16")

    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) > 1:
        s = tf.distribute.MirroredStrategy([d.name for d in cpus])
        return DeviceChoice(s, "cpu", "MirroredStrategy", s.num_replicas_in_sync, False,
                            f"{len(cpus)} logical CPU devices, MirroredStrategy")
    s = tf.distribute.get_strategy()
    return DeviceChoice(s, "cpu", "default", 1, False, f"CPU ({os.cpu_count()} cores), default strategy")


def _tpu(tf, address):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as exc:  # noqa: BLE001 - resolver/connection errors vary by TF build
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = address or "(auto-detect)"
        raise DeviceError(f"--tpu {where}: cannot reach a TPU ({text}); check the address or use --device cpu|gpu") from None
    s = tf.distribute.TPUStrategy(resolver)
    return DeviceChoice(s, "tpu", "TPUStrategy", s.num_replicas_in_sync, False,
                        f"TPU {address or ''} with {s.num_replicas_in_sync} cores, TPUStrategy".replace("  ", " "))


def _multi_worker(tf):
    try:
        spec = json.loads(os.environ["TF_CONFIG"])
        n_workers = len(spec.get("cluster", {}).get("worker", []))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DeviceError(f"TF_CONFIG: not valid JSON ({exc}); unset it for single-machine training") from None
    s = tf.distribute.MultiWorkerMirroredStrategy()
    return DeviceChoice(s, "multi-worker", "MultiWorkerMirroredStrategy", s.num_replicas_in_sync, False,
                        f"{n_workers} workers (TF_CONFIG), MultiWorkerMirroredStrategy")


def enable_mixed_precision(choice: DeviceChoice):
    """Set the global Keras policy for this choice; returns the previous policy name to restore."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if choice.mixed_precision else "float32")
    return previous


def split_cpu(n=2):
    """Expose the CPU as ``n`` logical devices (must run before TensorFlow initialises devices)."""
    tf = import_tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
