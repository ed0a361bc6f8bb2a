"""``edgeinspect watch``: the long-running inspection service on the device.

One module per concern: ``sources`` (folder, video/stream, camera, Picamera2),
``log`` (the JSONL result log), ``rejects``, ``hook``, ``mqtt``, ``metrics``
(Prometheus), ``service`` (the loop) and ``systemd``. Nothing here imports
TensorFlow; OpenCV, paho-mqtt and prometheus-client are imported only when the
option that needs them is used.
"""
