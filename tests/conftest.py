"""Shared test set-up.

Nothing here touches the network: Keras's cache points at ../shared/weights and
model tests pass the offline weights file explicitly. Session fixtures (a tiny
synthetic dataset, tiny trained runs, their exports) are built once and shared;
each area keeps its fixtures in ``tests/fixtures/<area>.py``.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.environ.setdefault("KERAS_HOME", str(SHARED / "weights" / "keras_cache"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fixtures.common import *  # noqa: E402,F401,F403
from tests.fixtures.data import *  # noqa: E402,F401,F403
from tests.fixtures.trainer import *  # noqa: E402,F401,F403
from tests.fixtures.anomaly import *  # noqa: E402,F401,F403
from tests.fixtures.export import *  # noqa: E402,F401,F403
from tests.fixtures.edge import *  # noqa: E402,F401,F403
from tests.fixtures.watch import *  # noqa: E402,F401,F403
from tests.fixtures.bench import *  # noqa: E402,F401,F403
