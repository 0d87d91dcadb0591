"""From a prompt image to the normalised pixels the vision tower takes.

The engine does not read image files itself: it is handed the app's image reader (`ImageReader`, normally
`ixc_app.media.load_rgb`), so images reach the model exactly as uploads were validated (EXIF orientation,
transparency on white) and this package imports nothing of the app.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ixc_app.engines.base import BadRequest, ImageReader
from ixc_app.i18n import tr
from ixc_app.ixc import hd
from ixc_app.ixc.prompt import ImageSegment


def image_pixels(segment: ImageSegment, read_image: ImageReader) -> torch.Tensor:
    """Normalised pixels [1, 3, H, W] of a prompt image: the HD partition, or a video strip as it is.

    A video strip is already whole crops and is only normalised.
    """
    try:
        rgb = read_image(segment.image.path)
    except (OSError, Image.DecompressionBombError) as exc:
        name = Path(segment.image.path).name
        raise BadRequest(
            tr("An image of this conversation ({name}) cannot be read; attach it again.", name=name)
        ) from exc
    if segment.image.is_video:
        return hd.normalize(rgb)
    return hd.hd_transform(rgb, segment.hd_num).pixel_values
