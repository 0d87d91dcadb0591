"""IXC-2.5 model facts: tokenizer, chat template, HD partition, video composite.

Nothing here imports gradio or an engine: these modules turn a conversation into exactly the input the
reference implementation builds, so every engine sees the same prompt.
"""
