"""edge.imageio: every odd format a camera may produce becomes RGB uint8; bad files name themselves."""
import io

import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError
from edge.imageio import is_image_path, load_image, open_image


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def _check(arr, shape):
    assert arr.dtype == np.uint8 and arr.shape == shape, (arr.dtype, arr.shape)


def test_grayscale_l(tmp_path):
    arr = load_image(_save(Image.new("L", (5, 4), 100), tmp_path / "g.png"))
    _check(arr, (4, 5, 3))
    assert (arr == 100).all()


def test_one_bit(tmp_path):
    img = Image.new("1", (6, 2), 0)
    img.putpixel((0, 0), 1)
    arr = load_image(_save(img, tmp_path / "b.png"))
    _check(arr, (2, 6, 3))
    assert arr[0, 0].tolist() == [255, 255, 255] and arr[1, 1].tolist() == [0, 0, 0]


def test_palette_without_transparency(tmp_path):
    img = Image.new("P", (3, 3), 1)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    arr = load_image(_save(img, tmp_path / "p.png"))
    _check(arr, (3, 3, 3))
    assert (arr == [200, 10, 20]).all()


def test_palette_with_transparency_is_composited_on_black(tmp_path):
    img = Image.new("P", (4, 1), 1)
    img.putpalette([0, 255, 0, 200, 10, 20] + [0] * 762)
    img.putpixel((0, 0), 0)
    path = _save(img, tmp_path / "pt.png", transparency=0)
    assert Image.open(path).info.get("transparency") == 0
    arr = load_image(path)
    assert arr[0, 0].tolist() == [0, 0, 0], "transparent palette entry must become black, not green"
    assert arr[0, 1].tolist() == [200, 10, 20]


def test_rgba_composited_on_black(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[..., :3] = (200, 100, 50)
    a[0, 0, 3], a[0, 1, 3], a[1, :, 3] = 255, 0, 128
    arr = load_image(_save(Image.fromarray(a, "RGBA"), tmp_path / "rgba.png"))
    assert arr[0, 0].tolist() == [200, 100, 50]
    assert arr[0, 1].tolist() == [0, 0, 0]
    assert np.abs(arr[1, 0].astype(int) - [100, 50, 25]).max() <= 1


def test_la_composited_on_black(tmp_path):
    img = Image.new("LA", (2, 1), (180, 255))
    img.putpixel((1, 0), (180, 0))
    arr = load_image(_save(img, tmp_path / "la.png"))
    assert arr[0, 0].tolist() == [180] * 3 and arr[0, 1].tolist() == [0] * 3


def test_16bit_grayscale_png_maps_full_range_to_8_bit(tmp_path):
    a = np.array([[0, 32896, 65535]], np.uint16)
    path = _save(Image.fromarray(a), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I")
    arr = load_image(path)
    _check(arr, (1, 3, 3))
    assert arr[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    arr = load_image(path)
    _check(arr, (16, 16, 3))
    r, g, b = arr[8, 8].astype(int)
    assert r > 200 and g < 60 and b < 60, "full magenta+yellow ink is red"


@pytest.mark.parametrize("ext, kw", [(".tif", {}), (".tiff", {"compression": "tiff_lzw"}), (".bmp", {}),
                                     (".jpg", {"quality": 100}), (".webp", {"lossless": True})])
def test_common_containers(tmp_path, ext, kw):
    src = np.zeros((8, 10, 3), np.uint8)
    src[:, :5] = (250, 20, 20)
    src[:, 5:] = (20, 20, 250)
    arr = load_image(_save(Image.fromarray(src), tmp_path / f"x{ext}", **kw))
    _check(arr, (8, 10, 3))
    tol = 0 if ext != ".jpg" else 40
    assert np.abs(arr[:, 1].astype(int) - [250, 20, 20]).max() <= tol
    assert np.abs(arr[:, 8].astype(int) - [20, 20, 250]).max() <= tol


def test_float_tiff_in_unit_range(tmp_path):
    a = np.array([[0.0, 0.5, 1.0]], np.float32)
    arr = load_image(_save(Image.fromarray(a, "F"), tmp_path / "f.tif"))
    assert arr[0, :, 0].tolist() == [0, 128, 255]


def test_float_tiff_in_8_bit_range(tmp_path):
    a = np.array([[0.0, 100.0, 255.0]], np.float32)
    arr = load_image(_save(Image.fromarray(a, "F"), tmp_path / "f255.tif"))
    assert arr[0, :, 0].tolist() == [0, 100, 255]


def test_resize_and_jpeg_draft_give_requested_size(tmp_path):
    path = _save(Image.new("RGB", (800, 600), (10, 200, 30)), tmp_path / "big.jpg")
    arr = load_image(path, (60, 80))
    _check(arr, (60, 80, 3))
    assert np.abs(arr.astype(int) - [10, 200, 30]).max() <= 8
    _check(load_image(path, 32), (32, 32, 3))


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    arr = load_image(_save(img, tmp_path / "rot.jpg", exif=exif.tobytes()))
    assert arr.shape[:2] == (4, 2)


@pytest.mark.parametrize("name, content, reason", [
    ("empty.png", b"", "empty file"),
    ("notes.png", b"operator notes, not a picture", "not an image Pillow can read"),
    ("trunc.png", None, "corrupt or truncated"),
    ("trunc.jpg", None, "corrupt or truncated"),
])
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is None:
        buf = io.BytesIO()
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
            buf, format="PNG" if name.endswith(".png") else "JPEG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as exc:
        load_image(path, 16)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg and exc.value.path == str(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageError, match="nope.png: cannot read"):
        open_image(tmp_path / "nope.png")


def test_is_image_path():
    assert is_image_path("a/B.PNG") and is_image_path("x.tiff") and not is_image_path("notes.txt")
