"""The page's static text, by key: key -> (English, Chinese). Gradio's frontend shows the one of the page's
language (`ui.language.word`); keys are dotted names that no plain value shown on the page could equal, since
the frontend also translates any plain string that happens to be a key."""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    "app.language": ("Language", "语言"),
    "app.header": (
        "# IXC-2.5 Studio\n"
        "Ask InternLM-XComposer-2.5 about several high-resolution images or a video, over as many turns as "
        "you like.",
        "# IXC-2.5 Studio\n向 InternLM-XComposer-2.5 询问多张高分辨率图片或一段视频，对话轮数不限。",
    ),
    "app.demo_banner": (
        "**Demo model: answers are random noise.**\n\nThe app is running a tiny random-weight checkpoint "
        "(the server log says why). To chat with the real model, download "
        "`internlm/internlm-xcomposer2d5-7b` and start the app with `python app.py --model PATH` "
        "(or set `IXC_MODEL=PATH`).",
        "**演示模型：回答只是随机噪声。**\n\n本应用正在运行一个很小的随机权重检查点（原因见服务器日志）。"
        "要与真正的模型对话，请下载 `internlm/internlm-xcomposer2d5-7b`，并用 "
        "`python app.py --model PATH` 启动应用（或设置 `IXC_MODEL=PATH`）。",
    ),
    "app.tab_chat": ("Chat", "对话"),
    # The conversation list and its drawer
    "chat.conversations": ("Conversations", "对话列表"),
    "chat.list_empty": ("Your conversations will be listed here.", "你的对话会列在这里。"),
    "chat.new": ("New conversation", "新对话"),
    "chat.manage": ("Rename or delete", "重命名或删除"),
    "chat.name": ("Name", "名称"),
    "chat.rename": ("Rename", "重命名"),
    "chat.delete": ("Delete", "删除"),
    "chat.confirm_delete": (
        "Delete this conversation and its pictures? This cannot be undone.",
        "要删除此对话及其图片吗？此操作无法撤销。",
    ),
    "chat.delete_for_good": ("Delete for good", "永久删除"),
    "chat.keep": ("Keep it", "保留"),
    "chat.export": ("Export", "导出"),
    "chat.import": ("Import", "导入"),
    "chat.exported": ("Exported conversation", "导出的对话"),
    # The chat and its composer
    "chat.conversation": ("Conversation", "对话"),
    "chat.placeholder": (
        "**Attach images or a video and ask about them.** Or start from an example:",
        "**附上图片或视频，然后就它们提问。** 也可以从示例开始：",
    ),
    "chat.composer": ("Ask about your images or video…", "就你的图片或视频提问…"),
    "chat.hint": (
        "Up to {max_files} images or videos per message; videos up to {max_video_seconds} s; text files are "
        "read into the message.",
        "每条消息最多 {max_files} 个图片或视频；视频最长 {max_video_seconds} 秒；文本文件会读入消息。",
    ),
    # The generation settings
    "settings.title": ("Generation settings", "生成设置"),
    "settings.max_new_tokens": ("Max new tokens", "最大新 token 数"),
    "settings.max_new_tokens.info": ("The longest answer, in tokens.", "回答的最大长度，以 token 计。"),
    "settings.temperature": ("Temperature", "温度"),
    "settings.temperature.info": ("0 always picks the likeliest token.", "为 0 时总是选概率最高的 token。"),
    "settings.top_p": ("Top-p", "Top-p"),
    "settings.top_p.info": ("Nucleus sampling.", "核采样。"),
    "settings.top_k": ("Top-k", "Top-k"),
    "settings.top_k.info": ("0 = no limit.", "0 = 不限。"),
    "settings.repetition_penalty": ("Repetition penalty", "重复惩罚"),
    "settings.repetition_penalty.info": ("1 = none.", "1 = 不惩罚。"),
    "settings.seed": ("Seed", "随机种子"),
    "settings.seed.info": ("-1 = a new random seed for every answer.", "-1 = 每次回答都用新的随机种子。"),
    "settings.image_mode": ("Image detail", "图像细节"),
    "settings.image_mode.auto": (
        "Auto: full for one image, less for several",
        "自动：单张图完整细节，多张图降低细节",
    ),
    "settings.image_mode.single": ("Full for every image", "每张图都用完整细节"),
    "settings.image_mode.multi": ("Less for every image", "每张图都降低细节"),
    "settings.hd_num_single": ("Crops, full detail", "切块数（完整细节）"),
    "settings.hd_num_single.info": (
        "hd_num of an image shown in full detail.",
        "以完整细节处理的图片的 hd_num。",
    ),
    "settings.hd_num_multi": ("Crops, less detail", "切块数（降低细节）"),
    "settings.hd_num_multi.info": (
        "hd_num of each image when detail is lowered.",
        "降低细节时每张图片的 hd_num。",
    ),
    "settings.use_meta": ("Use the system prompt (meta instruction)", "使用系统提示词（meta instruction）"),
    "settings.use_meta.info": (
        "The model's own introduction, sent before the conversation.",
        "模型自带的开场说明，在对话之前发送。",
    ),
    "settings.meta_instruction": ("System prompt", "系统提示词"),
    "settings.meta_instruction.info": (
        "Edit it to give this conversation your own instructions; empty it to restore the model's.",
        "编辑它可给本对话写入你自己的指示；清空则恢复模型自带的提示词。",
    ),
}
