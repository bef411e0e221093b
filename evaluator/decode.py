"""Decode one image file to an HxWx3 uint8 RGB array, the same way for every model and runtime.

What is accepted, refused and converted, and by which decoder: DECODE_POLICY below (a constant, not this
docstring, which `python -OO` strips).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from evaluator.errors import ImageDecodeError

MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS
DECODE_POLICY = (
    "Images are recognised by content, not by file name: JPEG, PNG and BMP are accepted (a PNG named .JPEG "
    "decodes as a PNG); anything else is refused. The header is read first, and an image with more than "
    "max_pixels pixels (default 89,478,485, Pillow's limit) is refused without being decoded, as a "
    "decompression-bomb guard. A JPEG without an end-of-image marker after its last scan and a PNG without its "
    "IEND chunk count as truncated and are refused, as are empty and unreadable files; the error names the file "
    "and the reason. A JPEG whose scan data libjpeg reports as corrupt (\"Corrupt JPEG data: ...\", which libjpeg "
    "otherwise only prints while still returning pixels) is refused with that message. An error reading the file "
    "(permission denied, a file gone) is transient and never cached as a result. Grayscale, CMYK, palette, alpha "
    "and 16-bit images all become 8-bit RGB: gray is repeated over three channels, alpha is dropped (not "
    "blended), 16-bit values are scaled down to 8 bits (high byte), not clipped. EXIF orientation is ignored by "
    "default, as the ailia ONNX scripts read images with IMREAD_UNCHANGED; exif_transpose=True applies it, as the "
    "ailia TFLite scripts' IMREAD_COLOR does. Gray and colour JPEGs are decoded by libjpeg-turbo through "
    "simplejpeg (bit-identical to OpenCV's decoder, which cannot report corrupt data), other images by OpenCV; "
    "Pillow is the fallback for files OpenCV cannot decode."
)

_JPEG_START = b"\xff\xd8\xff"
_JPEG_START_OF_SCAN = b"\xff\xda"
_JPEG_END_OF_IMAGE = b"\xff\xd9"
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 (C4 DHT, C8 JPG, CC DAC)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END_CHUNK = b"IEND\xaeB`\x82"  # chunk type and its fixed CRC
_BMP_SIGNATURE = b"BM"
# libjpeg warnings that mean the pixels are not the file's (strict simplejpeg raises them as ValueError); any other
# warning (an odd but intact header) leaves the file to OpenCV, as before.
_DAMAGED_JPEG_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG file")
# EXIF orientation -> the transposes and flips OpenCV's IMREAD_COLOR applies (flip codes: 0 vertical, 1 horizontal)
_ORIENTATION_STEPS = {2: (False, 1), 3: (False, -1), 4: (False, 0), 5: (True, None), 6: (True, 1), 7: (True, -1),
                      8: (True, 0)}


def decode_image(path: str | Path, *, exif_transpose: bool = False, max_pixels: int = MAX_PIXELS,
                 channels: str = "RGB") -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB per DECODE_POLICY; ImageDecodeError("<path>: <reason>") otherwise.

    Args:
        channels: "BGR" returns OpenCV's own channel order, skipping a conversion of the full-size image when the
            caller only crops and resizes (which treat channels alike) before swapping them on the small result.
    """
    path = Path(path)
    return decode_bytes(path, read_image_bytes(path), exif_transpose=exif_transpose, max_pixels=max_pixels,
                        channels=channels)


def read_image_bytes(path: str | Path) -> bytes:
    """The file's bytes; ImageDecodeError (transient: a read error says nothing about the content)."""
    return _read_bytes(Path(path))


def decode_bytes(path: Path, data: bytes, *, exif_transpose: bool = False, max_pixels: int = MAX_PIXELS,
                 channels: str = "RGB") -> np.ndarray:
    """decode_image() of bytes already read from `path` (named in errors), for callers that also hash them."""
    if channels not in ("RGB", "BGR"):
        raise ValueError(f"channels must be 'RGB' or 'BGR', not {channels!r}")
    if not data:
        raise ImageDecodeError(f"{path}: empty file (0 bytes)")
    frame = _jpeg_frame(path, data)
    header = None if frame else _open_header(path, data)
    width, height = frame[:2] if frame else header.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{path}: image is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,} "
            "(decompression bomb guard)"
        )
    bgr = _decode_jpeg(path, data, exif_transpose) if frame and frame[2] in (1, 3) else None
    if bgr is None:
        flags = cv2.IMREAD_COLOR if exif_transpose else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if bgr is None:
        rgb = _decode_with_pil(path, header or _open_header(path, data), exif_transpose)
        return rgb if channels == "RGB" else np.ascontiguousarray(rgb[..., ::-1])
    return bgr if channels == "BGR" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_jpeg(path: Path, data: bytes, exif_transpose: bool) -> np.ndarray | None:
    """BGR pixels of a gray or colour JPEG, ImageDecodeError for corrupt data, None to leave the file to OpenCV."""
    try:
        bgr = simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)
    except ValueError as exc:
        message = str(exc)
        if message.startswith(_DAMAGED_JPEG_WARNINGS):
            raise ImageDecodeError(f"{path}: damaged JPEG data (libjpeg: {message})") from None
        return None
    if not exif_transpose:
        return bgr
    transpose, flip = _ORIENTATION_STEPS.get(_exif_orientation(data), (False, None))
    if transpose:
        bgr = cv2.transpose(bgr)
    return bgr if flip is None else cv2.flip(bgr, flip)


def _exif_orientation(data: bytes) -> int:
    from PIL import JpegImagePlugin

    try:
        return int(JpegImagePlugin.JpegImageFile(io.BytesIO(data)).getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable EXIF block means no orientation, as for OpenCV
        return 1


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read the file ({exc.strerror or exc})", transient=True) from None


def _jpeg_frame(path: Path, data: bytes) -> tuple[int, int, int] | None:
    """(width, height, components) of a complete JPEG from its frame header, or None where Pillow should read the
    header.

    Walking the marker segments to the first SOF costs microseconds, against ~20-40 us for Pillow's header parser,
    which holds the GIL while the other workers wait for it; anything unusual (no frame header before the scan, a
    zero size) is left to Pillow. A cold predict() of mobilenet_v1_025_128_quant on the 700 fixture images took
    1.93 s with this parser and 2.19 s with Pillow's header for every JPEG (medians of 8 rounds in fresh processes,
    the two interleaved, on the loaded 2-core machine of issue 17): 12%.
    """
    if not data.startswith(_JPEG_START):
        return None
    _check_jpeg_complete(path, data)
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_FRAME_MARKERS:
            height, width = int.from_bytes(data[at + 5:at + 7], "big"), int.from_bytes(data[at + 7:at + 9], "big")
            components = data[at + 9] if at + 9 < len(data) else 0
            return (width, height, components) if width and height else None
        if marker == _JPEG_START_OF_SCAN[1]:
            return None
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


def _check_jpeg_complete(path: Path, data: bytes) -> None:
    # 0xFFD9 cannot occur inside entropy-coded data, so a complete JPEG has it after its last scan. Searched as
    # "no scan after the last end-of-image marker", which reads only the file's head and tail.
    end = data.rfind(_JPEG_END_OF_IMAGE)
    if data.find(_JPEG_START_OF_SCAN) < 0 or end < 0 or data.find(_JPEG_START_OF_SCAN, end) >= 0:
        raise ImageDecodeError(f"{path}: truncated JPEG (no end-of-image marker after the last scan)")


def _open_header(path: Path, data: bytes):
    """Identify the format by content, check completeness and read the header lazily (no pixel data decoded)."""
    # The plugin classes are used instead of Image.open because Image.open applies Pillow's own global bomb limit
    # (a warning, an error above twice the limit); here the caller's max_pixels is the only limit.
    from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin

    if data.startswith(_JPEG_START):
        _check_jpeg_complete(path, data)
        plugin = JpegImagePlugin.JpegImageFile
    elif data.startswith(_PNG_SIGNATURE):
        if data.rfind(_PNG_END_CHUNK) < 0:
            raise ImageDecodeError(f"{path}: truncated PNG (no IEND chunk)")
        plugin = PngImagePlugin.PngImageFile
    elif data.startswith(_BMP_SIGNATURE):
        plugin = BmpImagePlugin.BmpImageFile
    else:
        raise ImageDecodeError(f"{path}: not a JPEG, PNG or BMP image (starts with {data[:8]!r})")
    try:
        return plugin(io.BytesIO(data))
    except Exception as exc:  # Pillow raises assorted types (SyntaxError, OSError, struct.error) for bad headers
        raise ImageDecodeError(f"{path}: unreadable {plugin.format} header ({exc})") from None


def _decode_with_pil(path: Path, image, exif_transpose: bool) -> np.ndarray:
    from PIL import ImageOps

    try:
        image.load()
        if exif_transpose:
            image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except Exception as exc:  # Pillow reports broken pixel data with assorted types (OSError, SyntaxError, ...)
        raise ImageDecodeError(f"{path}: cannot decode the {image.format or 'image'} data ({exc})") from None


def _to_rgb(image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit gray: keep the high byte (scale down); Pillow's own conversion to 8 bits would clip at 255.
        gray = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.asarray(image.convert("RGB")).copy()
