"""The Chinese for the sentences the server says about the chat (`ixc_app.i18n.tr`): English template ->
Chinese template, with the same `{placeholders}`. `tests/test_i18n.py` checks that
every `tr` call has its entry.

Here: the chat's use cases (`ixc_app.chat`), the conversation store, the context budget's refusal (said by
`chat.request`, since `ixc/` imports nothing of the app) and the errors a user reads from the engines."""

from __future__ import annotations

CHAT_ZH: dict[str, str] = {
    # chat.conversation: a new conversation's names, and what cannot be done to it
    "New conversation": "新对话",
    "Video": "视频",
    "Images": "图片",
    "Image": "图片",
    "There is no answer to continue; send a message first.": "没有可继续的回答；请先发送一条消息。",
    "The message is empty; type a question or attach an image or a video.": (
        "消息为空；请输入问题，或附上图片或视频。"
    ),
    "The previous message has no answer yet; retry it or undo it first.": (
        "上一条消息还没有回答；请先重试或撤销它。"
    ),
    "There is no question to answer; send a message first.": "没有要回答的问题；请先发送一条消息。",
    "There is nothing to undo.": "没有可撤销的内容。",
    "Only your own messages can be edited.": "只能编辑你自己的消息。",
    "Only answers can be liked or disliked.": "只能对回答点赞或点踩。",
    "A conversation needs a name; type at least one character.": "对话需要一个名称；请至少输入一个字符。",
    # chat.versions
    "The answer is still being written; wait for it or press Stop, then pick another version.": (
        "回答仍在生成中；请等待完成或点击停止，然后再选择其他版本。"
    ),
    "There is nothing to retry; send a message first.": "没有可重试的内容；请先发送一条消息。",
    "There is no answer to show another version of; send a message first.": (
        "没有可切换版本的回答；请先发送一条消息。"
    ),
    "That version of the answer does not exist; reload the page.": "该版本的回答不存在；请刷新页面。",
    # chat.display: notes under answers, media captions, a message being read
    "*(stopped)*": "*（已停止）*",
    "*(the answer reached the maximum length)*": "*（回答已达到最大长度）*",
    "*(interrupted: the server stopped while writing this answer; press Retry to answer it again)*": (
        "*（已中断：服务器在生成此回答时停止了；点击重试以重新回答）*"
    ),
    "Image {number} · {name}": "图片 {number} · {name}",
    "{caption} (video; this format plays only after download)": "{caption}（视频；此格式需下载后才能播放）",
    "*Processing {name} … {status}*": "*正在处理 {name} … {status}*",
    "**Error:** {error}": "**错误：**{error}",
    "*({n} earlier messages were left out to fit the context budget.)*": (
        "*（为适应上下文预算，省略了之前的 {n} 条消息。）*"
    ),
    # chat.drafts and chat.service: refusals of a message
    "This conversation is still answering your previous message; wait for the answer or press Stop, then "
    "send again.": "此对话仍在回答你的上一条消息；请等待回答完成或点击停止，然后再发送。",
    "The message is {length:,} characters long, over the limit of {limit:,}; shorten it or split it over "
    "several messages.": "消息长度为 {length:,} 个字符，超过了 {limit:,} 的上限；请缩短消息或分成多条发送。",
    "{count} files are attached but a message may carry at most {limit}; send them over several "
    "messages.": "附加了 {count} 个文件，但一条消息最多只能带 {limit} 个；请分成多条消息发送。",
    "This conversation already holds {already} images and videos and may hold at most {limit}; start a "
    "new conversation for these files.": (
        "此对话已有 {already} 个图片和视频，最多只能有 {limit} 个；请为这些文件新建一个对话。"
    ),
    "The model failed while answering (the details are in the server log); try again.": (
        "模型在回答时出错（详情见服务器日志）；请重试。"
    ),
    "'{name}' is no longer on the server; attach it again.": "“{name}”已不在服务器上；请重新附加。",
    "An attached file was removed while the message was being prepared (its conversation was deleted); "
    "attach it again.": "准备消息时，一个附件被移除了（它所在的对话已被删除）；请重新附加。",
    "This conversation was deleted while the message was being prepared; start a new conversation and "
    "send it again.": "准备消息时，此对话已被删除；请新建一个对话并重新发送。",
    "This message needs {needed} tokens ({image_tokens} of them for images) plus {reserved} reserved for "
    "the answer, more than the context limit of {limit}: attach fewer images, lower the image detail "
    "(hd_num), shorten the text or lower the maximum answer length.": (
        "这条消息需要 {needed} 个 token（其中 {image_tokens} 个用于图片），另需为回答预留 {reserved} 个，"
        "超过了 {limit} 的上下文上限：请减少图片、降低图片细节（hd_num）、缩短文字或调低最大回答长度。"
    ),
    "The video '{name}' has no frame strip; attach it again.": "视频“{name}”没有帧图；请重新附加。",
    # chat.ingest: how far an attachment is
    "checking": "检查中",
    "ready": "就绪",
    "finding the frames": "正在定位帧",
    "decoding frame {done}/{total}": "正在解码第 {done}/{total} 帧",
    "building the frame strip": "正在拼接帧图",
    # chat.transfer: an import refused
    "The file is over the {mb:.0f} MB an import may be; export the conversation again from this app.": (
        "文件超过了导入上限 {mb:.0f} MB；请从本应用重新导出对话。"
    ),
    "The file is not a conversation exported by this app (not a readable zip).": (
        "该文件不是本应用导出的对话（不是可读取的 zip）。"
    ),
    "The archive holds more files than a conversation may; it was not made by this app.": (
        "压缩包中的文件多于一个对话所能容纳的数量；它不是本应用生成的。"
    ),
    "The archive holds files an export does not write; it was not made by this app.": (
        "压缩包中有导出时不会写入的文件；它不是本应用生成的。"
    ),
    "The archive unpacks to more than an import may hold; it was not made by this app.": (
        "压缩包解压后超出了导入上限；它不是本应用生成的。"
    ),
    "The archive has no {file}; export the conversation again.": "压缩包中没有 {file}；请重新导出对话。",
    "The conversation in the archive is too long to import.": "压缩包中的对话太长，无法导入。",
    "The {file} in the archive is damaged; export it again.": "压缩包中的 {file} 已损坏；请重新导出。",
    "The file is not a conversation exported by this app.": "该文件不是本应用导出的对话。",
    "The conversation was exported by a version of this app that this one cannot read.": (
        "该对话由本应用的另一个版本导出，当前版本无法读取。"
    ),
    "The conversation holds more images and videos than a conversation may.": (
        "该对话中的图片和视频多于一个对话所能容纳的数量。"
    ),
    "The archive lacks the file of '{name}'; export it again.": "压缩包中缺少“{name}”的文件；请重新导出。",
    # store
    "This conversation was not found; it may have been deleted. Start a new one.": (
        "找不到此对话；它可能已被删除。请新建一个对话。"
    ),
    # engines (what a user reads while chatting; the operator's startup and configuration errors stay
    # English): engines.native
    "The prompt ({prompt} tokens) plus up to {new} new tokens exceeds the model's context of {limit} tokens; "
    "shorten the conversation or send fewer images.": (
        "提示词（{prompt} 个 token）加上最多 {new} 个新 token，超过了模型 {limit} 个 token 的上下文；"
        "请缩短对话或减少图片。"
    ),
    "The conversation needs {needed} tokens but its cache holds {capacity}; start a new conversation or "
    "send fewer or smaller images.": (
        "对话需要 {needed} 个 token，但其缓存只能容纳 {capacity} 个；请新建对话，或发送更少或更小的图片。"
    ),
    "The GPU ran out of memory for this request; try again shortly, or with a shorter conversation or fewer "
    "images.": "GPU 内存不足，无法处理此请求；请稍后重试，或缩短对话、减少图片。",
    "This model has no {mode!r} mode; use one of {modes}.": (
        "此模型没有 {mode!r} 模式；请使用以下之一：{modes}。"
    ),
    "This checkpoint has no task LoRA for the {mode!r} mode; use one of {modes}.": (
        "此检查点没有 {mode!r} 模式的任务 LoRA；请使用以下之一：{modes}。"
    ),
    "max_new_tokens must be at least 1; ask for at least one token.": (
        "max_new_tokens 至少为 1；请至少请求一个 token。"
    ),
    "num_beams must be between 1 and {most}; ask for fewer beams.": (
        "num_beams 必须在 1 到 {most} 之间；请减少束数。"
    ),
    "An image of this conversation ({name}) cannot be read; attach it again.": (
        "无法读取此对话中的一张图片（{name}）；请重新附加。"
    ),
    "The model engine has been shut down; restart the app to chat again.": (
        "模型引擎已关闭；请重启应用后再聊天。"
    ),
    # engines.managed
    "The model server stopped and is starting again; your conversation is kept, so send your message again "
    "in a minute.": "模型服务器已停止，正在重新启动；你的对话已保留，请一分钟后重新发送消息。",
    "The model server stopped and is starting again (restart {restarts}); your conversation is kept, so send "
    "your message again in a minute.": (
        "模型服务器已停止，正在重新启动（第 {restarts} 次重启）；你的对话已保留，请一分钟后重新发送消息。"
    ),
    # engines.remote
    "The model server at {url} has no {mode!r} mode (it serves {offered}); start a server of the {mode} "
    "variant named {variant}.": (
        "{url} 上的模型服务器没有 {mode!r} 模式（它提供 {offered}）；"
        "请启动名为 {variant} 的 {mode} 变体服务器。"
    ),
    "The model server has no beam search; ask for one beam (sampling or greedy).": (
        "模型服务器不支持束搜索；请只用一个束（采样或贪心）。"
    ),
    "The model server at {url} sent nothing for {seconds:g} s; try again, or raise --engine-read-timeout if "
    "long prompts need more time.": (
        "{url} 上的模型服务器在 {seconds:g} 秒内没有返回任何内容；请重试，如果长提示词需要更多时间，"
        "请调大 --engine-read-timeout。"
    ),
    "The model server at {url} cannot be reached; start it, or point --engine-url at a running one.": (
        "无法连接 {url} 上的模型服务器；请启动它，或将 --engine-url 指向正在运行的服务器。"
    ),
    "The connection to the model server at {server} broke off before the answer was complete; try again.": (
        "回答完成前，与 {server} 上模型服务器的连接已中断；请重试。"
    ),
    "The request is larger than the model server at {server} accepts; send fewer or smaller images, or raise "
    "the server's request size limit.": (
        "请求超出了 {server} 上模型服务器可接受的大小；请发送更少或更小的图片，或调高服务器的请求大小上限。"
    ),
    "The model server at {server} rejected the request: {reason}": (
        "{server} 上的模型服务器拒绝了请求：{reason}"
    ),
    "The model server at {server} is busy (HTTP {status}); try again in a moment.": (
        "{server} 上的模型服务器正忙（HTTP {status}）；请稍后重试。"
    ),
    "The model server at {server} failed with HTTP {status}; try again, and check the server's log if it "
    "keeps failing.": (
        "{server} 上的模型服务器出错（HTTP {status}）；请重试，如果一直出错，请查看服务器日志。"
    ),
    "The model server at {server} failed while answering; try again.": (
        "{server} 上的模型服务器在回答时出错；请重试。"
    ),
    "The model server at {server} failed while answering ({reason}); try again.": (
        "{server} 上的模型服务器在回答时出错（{reason}）；请重试。"
    ),
    "The proxy at {server} has no model server free now (error {code}); try again later.": (
        "{server} 上的代理现在没有空闲的模型服务器（错误 {code}）；请稍后重试。"
    ),
    "The proxy at {server} got no answer from its model server (error {code}: the node failed or timed "
    "out); try again.": (
        "{server} 上的代理没有收到其模型服务器的回答（错误 {code}：节点出错或超时）；请重试。"
    ),
}
