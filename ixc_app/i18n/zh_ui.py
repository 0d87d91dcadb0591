"""The Chinese for the sentences the server says on the chat page (`ixc_app.ui`, through `ixc_app.i18n.tr`):
English template -> Chinese template, with the same `{placeholders}`. `tests/test_i18n.py` checks that
every `tr` call has its entry."""

from __future__ import annotations

UI_ZH: dict[str, str] = {
    # ui/chat_handlers.py
    "Stopped: the message was not sent and none of its files were kept; its text is back in the box.": (
        "已停止：消息没有发送，其文件一个也未保留；消息文字已放回输入框。"
    ),
    "Another conversation was opened while the message's files were read, so it was not sent.": (
        "读取消息文件时打开了另一个对话，因此消息没有发送。"
    ),
    "The {count} oldest messages were left out of this answer to fit the context budget; start a new "
    "conversation to use the full budget again.": (
        "为了不超出上下文预算，本次回答略去了最早的 {count} 条消息；开始新对话即可重新使用全部预算。"
    ),
    "Context budget": "上下文预算",
    "The conversation was deleted.": "对话已删除。",
    "That example does not exist; reload the page.": "该示例不存在；请重新加载页面。",
    # ui/transfer.py
    "No file arrived; choose the exported .zip again.": "没有收到文件；请重新选择导出的 .zip。",
    "'{title}' was imported.": "已导入“{title}”。",
    "Pass the exported .zip as the archive.": "请把导出的 .zip 作为 archive 传入。",
    # ui/identity.py
    "This page has lost its session; reload it to carry on.": "此页面已丢失会话；请重新加载页面后继续。",
    "That conversation id is not one this app returned; pass the id from an earlier answer, or an empty "
    "string to start a new conversation.": (
        "此对话 ID 不是本应用返回的；请传入之前回答返回的 ID，或传入空字符串以开始新对话。"
    ),
    "That id was returned to another login; log in as its user to use it.": (
        "此 ID 是返回给另一个登录用户的；请以该用户身份登录后使用。"
    ),
    # ui/follow.py
    "The saved conversations could not be read when the app started, so it started with an empty history; "
    "the damaged copy was kept on the server for its operator.": (
        "应用启动时无法读取已保存的对话，因此以空的历史记录启动；损坏的副本已保留在服务器上，供运维人员处理。"
    ),
    # ui/settings_form.py
    "{name} must be a number between {low:g} and {high:g}.": "{name} 必须是 {low:g} 到 {high:g} 之间的数。",
    "{name} must be between {low:g} and {high:g}, not {value}.": (
        "{name} 必须在 {low:g} 到 {high:g} 之间，而不是 {value}。"
    ),
    "{name} must be a whole number, not {value}.": "{name} 必须是整数，而不是 {value}。",
    "Image detail must be one of {choices}, not {value!r}.": (
        "图像细节必须是 {choices} 之一，而不是 {value!r}。"
    ),
    "Seed": "随机种子",
    "Max new tokens": "最大新 token 数",
    "Temperature": "温度",
    "Repetition penalty": "重复惩罚",
    "Crops for full detail": "完整细节的切块数",
    "Crops for less detail": "降低细节的切块数",
    "The system prompt must be text.": "系统提示词必须是文本。",
    "The system prompt is {length:,} characters long, over the limit of {limit:,}; shorten it.": (
        "系统提示词长 {length:,} 个字符，超过了 {limit:,} 的上限；请缩短。"
    ),
}
