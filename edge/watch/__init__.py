"""``edgeinspect watch``: the long-running inspection service on the device.

One module per concern: ``config`` (WatchConfig, every default once),
``sources`` (folder, video/stream, camera, Picamera2), ``feed`` (reader thread
and bounded queue), ``model_file`` (load and hot-reload the model), ``log``
(the JSONL result log and restart memory), ``sinks`` (rejects, Prometheus,
MQTT, hook -- each behind the Sink protocol), ``stats``, ``status`` (status
line and summary), ``service`` (the loop) and ``systemd``. Nothing here
imports TensorFlow; OpenCV, paho-mqtt and prometheus-client are imported only
when the option that needs them is used.
"""
