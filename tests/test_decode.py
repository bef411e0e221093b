"""Tests for evaluator/decode.py: formats by content, colour modes, EXIF policy, bomb guard, damaged files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from imagenet_factory import real_imagenet_dir
from PIL import Image, ImageOps

from evaluator import decode
from evaluator.dataset import load_dataset
from evaluator.decode import DECODE_POLICY, MAX_PIXELS, decode_image
from evaluator.errors import ImageDecodeError

RED_CMYK = (0, 255, 255, 0)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def blocks(height: int, width: int) -> np.ndarray:
    """Flat 8x8 blocks of random colour: JPEG keeps them nearly exact, so orientation is easy to check."""
    return np.kron(noise(height // 8, width // 8), np.ones((8, 8, 1), np.uint8))


def save(image: Image.Image, path: Path, image_format: str, **options) -> Path:
    image.save(path, image_format, **options)
    return path


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A structurally complete PNG whose header claims width x height; the pixel data is never reached."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0"))
        + png_chunk(b"IEND", b"")
    )


# --- formats and colour modes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_decodes_to_rgb_uint8(tmp_path, progressive):
    path = save(Image.new("RGB", (40, 30), (250, 10, 10)), tmp_path / "red.JPEG", "JPEG", progressive=progressive)
    rgb = decode_image(path)
    assert (rgb.shape, rgb.dtype) == ((30, 40, 3), np.uint8)
    assert rgb[..., 0].min() > 240
    assert rgb[..., 1:].max() < 20


@pytest.mark.parametrize("decoder", ["opencv", "pillow"])
def test_bgr_order_is_the_rgb_image_reversed(tmp_path, decoder, monkeypatch):
    path = save(Image.fromarray(noise(20, 30)), tmp_path / "image.JPEG", "PNG")
    if decoder == "pillow":  # the fallback for files OpenCV declines
        monkeypatch.setattr(decode.cv2, "imdecode", lambda *args: None)
    rgb = decode_image(path)
    np.testing.assert_array_equal(decode_image(path, channels="BGR"), rgb[..., ::-1])
    with pytest.raises(ValueError, match="channels must be"):
        decode_image(path, channels="RGBA")


@pytest.mark.parametrize("image_format", ["PNG", "BMP"])
def test_lossless_formats_named_jpeg_decode_exactly(tmp_path, image_format):
    pixels = noise(20, 30)
    path = save(Image.fromarray(pixels), tmp_path / "really_not_a_jpeg.JPEG", image_format)
    np.testing.assert_array_equal(decode_image(path), pixels)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(Image.new("CMYK", (16, 16), RED_CMYK), tmp_path / "cmyk.JPEG", "JPEG")
    rgb = decode_image(path)
    assert rgb.shape == (16, 16, 3)
    assert rgb[..., 0].min() > 240
    assert rgb[..., 1:].max() < 20


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(16 * 24, dtype=np.uint8).reshape(16, 24)
    path = save(Image.fromarray(gray), tmp_path / "gray.png", "PNG")
    rgb = decode_image(path)
    assert rgb.shape == (16, 24, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


def test_16_bit_png_is_scaled_down_not_clipped(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 0x00FF, 0x8000, 0xFFFF
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), pixels[..., ::-1])  # OpenCV writes BGR
    assert decode_image(path)[0, 0].tolist() == [0, 128, 255]


def test_palette_with_transparency_becomes_rgb(tmp_path):
    palette_image = Image.new("P", (4, 4), 0)
    palette_image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette_image.putpixel((1, 1), 1)
    rgb = decode_image(save(palette_image, tmp_path / "palette.png", "PNG", transparency=0))
    assert rgb.shape == (4, 4, 3)
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[1, 1].tolist() == [200, 100, 50]


@pytest.mark.parametrize(
    ("mode", "colour", "expected"), [("RGBA", (10, 20, 30, 0), [10, 20, 30]), ("LA", (77, 0), [77, 77, 77])]
)
def test_alpha_is_dropped_not_blended(tmp_path, mode, colour, expected):
    rgb = decode_image(save(Image.new(mode, (4, 4), colour), tmp_path / "alpha.png", "PNG"))
    assert rgb.shape == (4, 4, 3)
    assert rgb[2, 3].tolist() == expected


# --- EXIF orientation -----------------------------------------------------------------------------------------------


def test_exif_rotation_is_ignored_by_default_and_applied_on_request(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise
    path = save(Image.fromarray(blocks(24, 40)), tmp_path / "rotated.JPEG", "JPEG", exif=exif.tobytes(), quality=95)
    as_stored = decode_image(path)
    as_displayed = decode_image(path, exif_transpose=True)
    assert as_stored.shape == (24, 40, 3)
    assert as_displayed.shape == (40, 24, 3)
    np.testing.assert_array_equal(as_displayed, np.rot90(as_stored, k=-1))


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, image_format, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(Image.fromarray(blocks(24, 40)), tmp_path / f"o{orientation}.img", image_format, exif=exif.tobytes())
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        as_stored = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(decode_image(path, exif_transpose=True), expected)
    np.testing.assert_array_equal(decode_image(path), as_stored)


# --- decompression bomb guard ---------------------------------------------------------------------------------------


def test_image_above_max_pixels_is_refused(tmp_path):
    path = save(Image.fromarray(noise(30, 40)), tmp_path / "small.JPEG", "JPEG")
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path, max_pixels=1000)
    assert str(error.value) == (
        f"{path}: image is 40x30 = 1,200 pixels, above the limit of 1,000 (decompression bomb guard)"
    )
    assert decode_image(path, max_pixels=1200).shape == (30, 40, 3)


def test_huge_png_header_is_refused_without_decoding(tmp_path):
    path = tmp_path / "bomb.JPEG"
    path.write_bytes(png_header_only(30_000, 30_000))
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert f"{path}: image is 30000x30000 = 900,000,000 pixels, above the limit of {MAX_PIXELS:,}" in str(error.value)


def test_huge_jpeg_header_is_refused_without_decoding(tmp_path):
    data = bytearray(save(Image.fromarray(noise(8, 8)), tmp_path / "small.JPEG", "JPEG").read_bytes())
    frame = data.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", 60_000, 50_000)
    path = tmp_path / "bomb.JPEG"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert "image is 50000x60000 = 3,000,000,000 pixels" in str(error.value)


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"exif": Image.Exif()}, {"icc_profile": b"x" * 70_000},
                                     {"subsampling": 0}], ids=["baseline", "progressive", "exif", "icc", "444"])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_size_from_the_frame_header_agrees_with_pillow(tmp_path, options, mode):
    image = Image.fromarray(noise(37, 53)).convert(mode)
    if "exif" in options:
        options["exif"][0x0112] = 6  # an orientation tag, so the APP1 segment has content
    data = save(image, tmp_path / "a.JPEG", "JPEG", **options).read_bytes()
    filled = data[:2] + b"\xff\xff" + data[2:]  # fill bytes before a marker are allowed

    with Image.open(tmp_path / "a.JPEG") as reread:
        assert decode._jpeg_frame(tmp_path / "a.JPEG", data)[:2] == (53, 37) == reread.size
    assert decode._jpeg_frame(tmp_path / "a.JPEG", filled)[:2] == (53, 37)


# --- damaged files --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_refused_quietly(tmp_path, capfd, progressive):
    image = Image.fromarray(noise(64, 64))
    data = save(image, tmp_path / "full.JPEG", "JPEG", progressive=progressive).read_bytes()
    path = tmp_path / "half.JPEG"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert str(error.value) == f"{path}: truncated JPEG (no end-of-image marker after the last scan)"
    assert capfd.readouterr().err == ""


def test_jpeg_with_padding_after_the_end_marker_decodes(tmp_path):
    path = save(Image.fromarray(noise(16, 16)), tmp_path / "padded.JPEG", "JPEG")
    path.write_bytes(path.read_bytes() + b"\0" * 100)
    assert decode_image(path).shape == (16, 16, 3)


def test_truncated_png_is_refused(tmp_path):
    data = save(Image.fromarray(noise(64, 64)), tmp_path / "full.png", "PNG").read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert str(error.value) == f"{path}: truncated PNG (no IEND chunk)"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"this is a text file, not a picture\n", "not a JPEG, PNG or BMP image (starts with b'this is '"),
        (b"\xff\xd8\xff\xe0 but nothing else", "truncated JPEG"),
    ],
)
def test_non_images_are_refused_with_path_and_reason(tmp_path, content, reason):
    path = tmp_path / "fake.JPEG"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert str(error.value).startswith(f"{path}: {reason}")


def test_missing_file_is_a_decode_error(tmp_path):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(tmp_path / "gone.JPEG")
    assert str(error.value).startswith(f"{tmp_path / 'gone.JPEG'}: cannot read the file")


# --- Pillow fallback ------------------------------------------------------------------------------------------------


@pytest.fixture
def opencv_cannot_decode(monkeypatch):
    """Make OpenCV fail on everything so decode_image takes its Pillow path."""
    monkeypatch.setattr(decode.cv2, "imdecode", lambda *args: None)


def test_pillow_fallback_decodes_like_opencv(tmp_path, monkeypatch):
    path = save(Image.fromarray(blocks(24, 40)), tmp_path / "plain.JPEG", "JPEG")
    with_opencv = decode_image(path)
    monkeypatch.setattr(decode.cv2, "imdecode", lambda *args: None)
    with_pillow = decode_image(path)
    assert with_pillow.shape == with_opencv.shape
    assert np.abs(with_pillow.astype(int) - with_opencv).max() <= 2


def test_pillow_fallback_applies_exif_on_request(tmp_path, opencv_cannot_decode):
    exif = Image.Exif()
    exif[0x0112] = 8
    path = save(Image.fromarray(blocks(24, 40)), tmp_path / "rotated.png", "PNG", exif=exif.tobytes())
    assert decode_image(path).shape == (24, 40, 3)
    np.testing.assert_array_equal(decode_image(path, exif_transpose=True), np.rot90(decode_image(path)))


def test_pillow_fallback_scales_16_bit_gray(tmp_path, opencv_cannot_decode):
    path = save(Image.fromarray(np.array([[0x00FF, 0x8000, 0xFFFF]], np.uint16)), tmp_path / "deep.png", "PNG")
    rgb = decode_image(path)
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_pillow_fallback_reports_broken_pixel_data(tmp_path, opencv_cannot_decode):
    data = save(Image.fromarray(noise(32, 32)), tmp_path / "full.png", "PNG").read_bytes()
    pixels_start = data.index(b"IDAT") + 4
    path = tmp_path / "scrambled.png"
    path.write_bytes(data[:pixels_start] + b"\x00" * 64 + data[pixels_start + 64 :])
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert str(error.value).startswith(f"{path}: cannot decode the PNG data")


def test_policy_is_one_paragraph_naming_each_rule():
    assert "\n" not in DECODE_POLICY
    for rule in ("by content", "max_pixels", "truncated", "16-bit", "EXIF orientation is ignored", "exif_transpose"):
        assert rule in DECODE_POLICY


# --- the real 700-image slice ---------------------------------------------------------------------------------------


def test_every_real_image_decodes_to_rgb():
    dataset = load_dataset(real_imagenet_dir())
    n_gray = 0
    for image_id in dataset.image_ids:
        path = dataset.image_path(image_id)
        rgb = decode_image(path)
        with Image.open(path) as image:
            assert rgb.shape == (image.height, image.width, 3)
            if image.mode == "L":
                n_gray += 1
                assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    assert len(dataset.image_ids) == 700
    assert n_gray > 0


# --- damaged data and read errors (issue 13) ------------------------------------------------------------------------


def zero_scan_block(data: bytes, n_bytes: int = 4096) -> bytes:
    """The JPEG with a block of its entropy-coded data zeroed: size and end marker intact, as damaged disks leave it."""
    scan = data.index(b"\xff\xda")
    start = scan + (len(data) - scan) // 3
    return data[:start] + bytes(n_bytes) + data[start + n_bytes:]


def test_corrupt_jpeg_data_is_refused_with_the_decoders_message(tmp_path):
    dataset = load_dataset(real_imagenet_dir())
    original = dataset.image_path(dataset.image_ids[0]).read_bytes()
    path = tmp_path / "damaged.JPEG"
    path.write_bytes(zero_scan_block(original))
    assert path.stat().st_size == len(original)
    with pytest.raises(ImageDecodeError) as error:
        decode_image(path)
    assert str(error.value).startswith(f"{path}: damaged JPEG data (libjpeg: Corrupt JPEG data")
    assert not error.value.transient


def test_real_images_decode_bit_identically_to_opencv():
    dataset = load_dataset(real_imagenet_dir())
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    for image_id in dataset.image_ids:
        path = dataset.image_path(image_id)
        opencv = cv2.imdecode(np.fromfile(path, np.uint8), flags)
        np.testing.assert_array_equal(decode_image(path, channels="BGR"), opencv, err_msg=str(path))
    assert len(dataset.image_ids) == 700


def test_unreadable_file_is_a_transient_error(tmp_path):
    with pytest.raises(ImageDecodeError) as error:
        decode_image(tmp_path / "gone.JPEG")
    assert error.value.transient
