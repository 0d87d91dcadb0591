"""The Chinese for the sentences the server says about uploads (`ixc_app.media`): English template ->
Chinese template, with the same `{placeholders}`. `tests/test_i18n.py` checks that every `tr` call has its
entry."""

from __future__ import annotations

MEDIA_ZH: dict[str, str] = {
    "The server's disk is full, so the file could not be stored; send your message without attachments, or "
    "try again later.": "服务器磁盘已满，文件无法保存；请不带附件发送消息，或稍后再试。",
    "The server's storage for uploads is full ({used:.1f} MB of {limit:.1f} MB used); delete conversations "
    "you no longer need, or send your message without attachments.": (
        "服务器的上传存储空间已满（已用 {used:.1f} MB，共 {limit:.1f} MB）；"
        "请删除不再需要的对话，或不带附件发送消息。"
    ),
    "'{name}' is empty (0 bytes); upload the file again.": "“{name}”是空文件（0 字节）；请重新上传。",
    "'{name}' is {size}, over the {limit} limit for videos; upload a smaller file.": (
        "“{name}”大小为 {size}，超过了视频 {limit} 的上限；请上传更小的文件。"
    ),
    "'{name}' is {size}, over the {limit} limit for images; upload a smaller file.": (
        "“{name}”大小为 {size}，超过了图片 {limit} 的上限；请上传更小的文件。"
    ),
    "'{name}' is not an image or a video that can be read here; upload a JPEG, PNG, WebP, GIF, BMP or TIFF "
    "image, or an MP4, WebM, MKV, MOV or AVI video.": (
        "“{name}”不是这里能读取的图片或视频；请上传 JPEG、PNG、WebP、GIF、BMP 或 TIFF 图片，"
        "或 MP4、WebM、MKV、MOV 或 AVI 视频。"
    ),
    "'{name}' is a damaged {format} image that cannot be decoded; upload the original again.": (
        "“{name}”是一张已损坏、无法解码的 {format} 图片；请重新上传原图。"
    ),
    "'{name}' is incomplete (its {format} data ends early, as after an interrupted transfer); upload the "
    "complete file again.": (
        "“{name}”不完整（其 {format} 数据提前结束，像是传输中断）；请重新上传完整的文件。"
    ),
    "'{name}' declares an image too large to open safely (a possible decompression bomb); upload an "
    "ordinary image of at most {most} megapixels.": (
        "“{name}”声明的图片尺寸过大，无法安全打开（可能是解压炸弹）；请上传不超过 {most} 百万像素的普通图片。"
    ),
    "'{name}' is {width}x{height} pixels ({megapixels} megapixels), over the {most}-megapixel limit; scale "
    "it down and upload it again.": (
        "“{name}”为 {width}x{height} 像素（{megapixels} 百万像素），超过了 {most} 百万像素的上限；"
        "请缩小后重新上传。"
    ),
    "'{name}' has {width}x{height}-pixel frames ({megapixels} megapixels), over the {most}-megapixel limit; "
    "scale the video down and upload it again.": (
        "“{name}”的画面为 {width}x{height} 像素（{megapixels} 百万像素），超过了 {most} 百万像素的上限；"
        "请缩小视频后重新上传。"
    ),
    "'{name}' could not be played as a video (it is damaged, has no video frames or uses a format that "
    "cannot be decoded); convert it to MP4 (H.264) and upload it again.": (
        "“{name}”无法作为视频播放（文件已损坏、没有视频帧或使用了无法解码的格式）；"
        "请转换为 MP4（H.264）后重新上传。"
    ),
    "'{name}' is {seconds} seconds long, over the {most:g}-second limit; trim it and upload it again.": (
        "“{name}”时长 {seconds} 秒，超过了 {most:g} 秒的上限；请剪短后重新上传。"
    ),
    "'{name}' is not UTF-8 text; save it as UTF-8 (plain text) and attach it again.": (
        "“{name}”不是 UTF-8 文本；请另存为 UTF-8（纯文本）后重新附加。"
    ),
    "With the text of '{name}' the message is {length:,} characters long, over the limit of {limit:,}; "
    "attach a shorter file or paste the part that matters.": (
        "加上“{name}”的文本后，消息长度为 {length:,} 个字符，超过了 {limit:,} 的上限；"
        "请附加更短的文件，或只粘贴需要的部分。"
    ),
    "'{name}' is {size}, more text than a message may hold ({limit:,} characters); attach a shorter file or "
    "paste the part that matters.": (
        "“{name}”大小为 {size}，超出了一条消息能容纳的文本（{limit:,} 个字符）；"
        "请附加更短的文件，或只粘贴需要的部分。"
    ),
    "{n} bytes": "{n} 字节",
    "The file {key} is no longer stored; attach it again.": "文件 {key} 已不再保存；请重新附加。",
}
