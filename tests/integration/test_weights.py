"""MobileNetV2 weights: offline files, Keras's cache, and clear errors; nothing touches the network."""
import numpy as np
import pytest

from tests.fixtures.common import WEIGHTS_DIR, WEIGHTS_FULL, WEIGHTS_NO_TOP

CACHE_NO_TOP = WEIGHTS_DIR / "keras_cache" / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
LAYER = "block_1_project"


@pytest.fixture(scope="module")
def reference_kernel():
    """The kernel of a known layer read straight from the legacy h5 twin of the offline file."""
    import h5py

    with h5py.File(CACHE_NO_TOP, "r") as f:
        return np.array(f[LAYER][LAYER]["kernel"])


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails like an offline machine would (and fails the test loudly)."""
    from keras.src.utils import file_utils

    def offline(url, *a, **k):
        raise AssertionError(f"test tried the network: {url}")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)


def _kernel(model):
    return model.get_layer(LAYER).get_weights()[0]


def test_offline_no_top_file(reference_kernel):
    from trainer.backbone import build_backbone

    base = build_backbone(alpha=1.0, input_size=96, weights=str(WEIGHTS_NO_TOP))
    assert base.output_shape == (None, 3, 3, 1280)
    np.testing.assert_array_equal(_kernel(base), reference_kernel)
    assert not base.trainable


def test_full_include_top_file_drops_the_top(reference_kernel):
    from trainer.backbone import build_backbone

    base = build_backbone(alpha=1.0, input_size=96, weights=str(WEIGHTS_FULL))
    assert "predictions" not in [layer.name for layer in base.layers]
    np.testing.assert_array_equal(_kernel(base), reference_kernel)


def test_wrong_alpha_file_is_a_clear_error():
    from trainer.backbone import WeightsError, build_backbone

    with pytest.raises(WeightsError, match=r"not MobileNetV2 alpha=0.35 weights.*--alpha") as exc:
        build_backbone(alpha=0.35, input_size=96, weights=str(WEIGHTS_NO_TOP))
    assert str(WEIGHTS_NO_TOP) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file_names_the_offline_option(tmp_path):
    from trainer.backbone import WeightsError, build_backbone

    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(WeightsError, match="weights file not found") as exc:
        build_backbone(alpha=1.0, input_size=96, weights=str(missing))
    assert str(missing) in str(exc.value) and "--weights PATH" in str(exc.value)


def test_imagenet_from_keras_cache(reference_kernel):
    import os

    from trainer.backbone import build_backbone

    assert os.environ["KERAS_HOME"].endswith("keras_cache"), "tests/conftest.py must point KERAS_HOME at the cache"
    base = build_backbone(alpha=1.0, input_size=224, weights="imagenet")
    np.testing.assert_array_equal(_kernel(base), reference_kernel)


def test_imagenet_small_alpha_offline_names_weights_option(monkeypatch):
    from keras.src.utils import file_utils

    from trainer.backbone import WeightsError, build_backbone

    def offline_get_file(fname=None, origin=None, *a, **k):
        # What keras.utils.get_file raises when the fetch fails.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline_get_file)
    with pytest.raises(WeightsError, match="alpha=0.35 could not be downloaded") as exc:
        build_backbone(alpha=0.35, input_size=96, weights="imagenet")
    assert "--weights" in str(exc.value)
