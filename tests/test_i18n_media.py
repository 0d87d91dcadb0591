"""An upload's refusal is said in the language of the request that sent it: real validation of files made
here (empty, not an image, too many pixels, cut off, too large), in Chinese and in English."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ixc_app.i18n import speaking
from ixc_app.media import MediaLimits, MediaRejected, inspect_media

LIMITS = MediaLimits(max_image_bytes=10**6, max_video_bytes=10**7, max_pixels=64 * 64, max_video_seconds=60)


def png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (200, 40, 40)).save(path, format="PNG")
    return path


def refusal(path: Path, limits: MediaLimits = LIMITS) -> str:
    with pytest.raises(MediaRejected) as refused:
        inspect_media(path, path.name, limits)
    return str(refused.value)


def test_refusals_are_in_chinese_for_a_chinese_request_and_english_otherwise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    notes = tmp_path / "notes.png"
    notes.write_text("just some words, not a picture")
    big = png(tmp_path / "big.png", (100, 100))
    cut = png(tmp_path / "cut.png", (48, 48))
    cut.write_bytes(cut.read_bytes()[:-40])
    with speaking("zh"):
        assert refusal(empty) == "“empty.png”是空文件（0 字节）；请重新上传。"
        assert refusal(notes).startswith("“notes.png”不是这里能读取的图片或视频")
        assert refusal(big) == (
            "“big.png”为 100x100 像素（0.01 百万像素），超过了 0.0041 百万像素的上限；请缩小后重新上传。"
        )
        assert "cut.png" in refusal(cut) and "；请重新上传" in refusal(cut)
        small = MediaLimits(max_image_bytes=100, max_video_bytes=100, max_pixels=10**6, max_video_seconds=60)
        assert "超过了图片 100 字节 的上限" in refusal(big, small)
    assert refusal(empty) == "'empty.png' is empty (0 bytes); upload the file again."
    assert refusal(big).startswith("'big.png' is 100x100 pixels (0.01 megapixels), over the 0.0041-megapixel")
