"""Stored images as the model sees them: the one place where image files become RGB pixels.

EXIF orientation applied, any colour mode converted to 8-bit RGB, transparency laid on white. Validation
decodes every upload through `decode_image` once, so a later `load_rgb` of a stored file cannot fail.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
"""What Pillow may open (its JPEG opener also yields MPO, the multi-picture JPEG of phone cameras). Anything
else is not an image here: EPS, for one, would run Ghostscript."""

WHITE = (255, 255, 255)
_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")

# Pillow's own guard would refuse (as a "decompression bomb") images over about 179 megapixels, and warn over
# about 89, whatever --max-image-pixels allows. Every upload comes through `validate.inspect_media`, which
# checks the header's pixel count against the app's limit and against the file's size before any pixel is
# decoded, so the process-wide guard is switched off rather than set from one caller's limits.
Image.MAX_IMAGE_PIXELS = None


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """A validated image file as the model sees it: EXIF orientation applied, RGB, transparency on white."""
    with Image.open(path, formats=IMAGE_FORMATS) as image:
        return decode_image(image)


def decode_image(image: Image.Image) -> Image.Image:
    """Decode every pixel, orient, convert. Validation runs exactly this, so a later load cannot fail."""
    image.load()
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB. Transparent pixels are composited on white (what a viewer shows on a
    light page, and what the reference's white padding expects); 16/32-bit grey is scaled, not clipped."""
    if image.mode in _HIGH_BIT_GREY or image.mode == "F":
        return Image.fromarray(_grey_to_8bit(image)).convert("RGB")
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in image.info
    if not transparent:
        return image if image.mode == "RGB" else image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _grey_to_8bit(image: Image.Image) -> np.ndarray:
    """Integer grey is read as 16-bit (0..65535); float grey as 0..1 when it fits there, else as 0..255."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        values = np.nan_to_num(values)
        if values.size and values.max() <= 1.0:
            values = values * 255
    else:
        values = values / 257
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
