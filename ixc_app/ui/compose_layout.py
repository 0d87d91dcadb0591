"""The Composer tab's widgets: the article list, the request, the steps, the preview, editing, export and the
image library. Layout only; the events are wired in `compose_events`."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ixc_app.compose.article import STEPS, WritingSettings
from ixc_app.compose.editing import EDIT_ACTIONS
from ixc_app.compose.options import MAX_BEAMS, MAX_IMAGES, MAX_REPETITION_PENALTY
from ixc_app.compose.service import EXPORT_FORMATS
from ixc_app.compose.strings import say

FORM_NAMES = (
    "n_images",
    "target_length",
    "plan_first",
    "llm_only",
    "sampling",
    "num_beams",
    "repetition_penalty",
    "max_new_tokens",
    "seed",
    "use_meta",
)
"""The request's settings, in the order handlers and the `/compose` API receive them."""


@dataclass(frozen=True)
class ComposeApiPorts:
    compose: gr.Button
    edit: gr.Button
    export: gr.Button
    instruction: gr.Textbox
    files: gr.File
    form: list[gr.components.Component]
    article_in: gr.Textbox
    paragraph: gr.Number
    action: gr.Textbox
    text: gr.Textbox
    format: gr.Textbox
    markdown: gr.Textbox
    article_out: gr.Textbox
    file: gr.File


@dataclass(frozen=True)
class ComposerView:
    tab: gr.Tab
    article: gr.BrowserState
    new: gr.Button
    articles: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    instruction: gr.Textbox
    references: gr.File
    form: list[gr.components.Component]
    step_by_step: gr.Checkbox
    compose: gr.Button
    resume: gr.Button
    stop: gr.Button
    restart_step: gr.Dropdown
    restart: gr.Button
    status: gr.Markdown
    outline: gr.Textbox
    draft: gr.Textbox
    preview: gr.HTML
    paragraph: gr.Number
    action: gr.Radio
    edit_text: gr.Textbox
    apply: gr.Button
    up: gr.Button
    down: gr.Button
    undo: gr.Button
    redo: gr.Button
    caption: gr.Textbox
    search: gr.Button
    gallery: gr.Gallery
    remove_image: gr.Button
    upload_image: gr.File
    export_format: gr.Radio
    export: gr.Button
    export_file: gr.File
    library_files: gr.File
    library_add: gr.Button
    library_index: gr.Button
    library_stop: gr.Button
    library_status: gr.Markdown
    api: ComposeApiPorts


def _form(defaults: WritingSettings, visible: bool = True) -> list[gr.components.Component]:
    """The start of the request's settings in `FORM_NAMES` order (visible in the tab, hidden as API ports)."""
    return [
        gr.Dropdown(
            ["auto", *(str(n) for n in range(1, MAX_IMAGES + 1))],
            value="auto",
            label=say("ui.n_images"),
            info=say("ui.n_images_info"),
            elem_id="compose-n-images",
        )
        if visible
        else gr.Textbox("auto", label="n_images", visible=False),
        gr.Number(0, precision=0, minimum=0, label=say("ui.target_length") if visible else "target_length",
                  visible=visible),
        gr.Checkbox(defaults.plan_first, label=say("ui.plan_first") if visible else "plan_first",
                    visible=visible),
        gr.Checkbox(defaults.llm_only, label=say("ui.llm_only") if visible else "llm_only", visible=visible),
    ]  # fmt: skip


def _writing_form(
    defaults: WritingSettings, max_tokens: int, visible: bool = True
) -> list[gr.components.Component]:
    """The writing settings, the rest of `FORM_NAMES`."""
    return [
        gr.Checkbox(defaults.sampling, label=say("ui.sampling") if visible else "sampling", visible=visible),
        gr.Slider(1, MAX_BEAMS, value=defaults.num_beams, step=1,
                  label=say("ui.beams") if visible else "num_beams",
                  info=say("ui.beams_info") if visible else None, visible=visible),
        gr.Slider(1.0, MAX_REPETITION_PENALTY, value=defaults.repetition_penalty, step=0.005,
                  label=say("ui.repetition") if visible else "repetition_penalty", visible=visible),
        gr.Slider(1, max_tokens, value=defaults.max_new_tokens, step=1,
                  label=say("ui.max_tokens") if visible else "max_new_tokens", visible=visible,
                  elem_id="compose-max-tokens" if visible else None),
        gr.Number(-1, precision=0, label=say("ui.seed") if visible else "seed", visible=visible),
        gr.Checkbox(defaults.use_meta, label=say("ui.use_meta") if visible else "use_meta", visible=visible),
    ]  # fmt: skip


def api_ports(defaults: WritingSettings, max_tokens: int) -> ComposeApiPorts:
    with gr.Group(visible=False):
        return ComposeApiPorts(
            compose=gr.Button("compose", visible=False),
            edit=gr.Button("article_edit", visible=False),
            export=gr.Button("article_export", visible=False),
            instruction=gr.Textbox(label="instruction", visible=False),
            files=gr.File(label="files", file_count="multiple", type="filepath", visible=False),
            form=[*_form(defaults, visible=False), *_writing_form(defaults, max_tokens, visible=False)],
            article_in=gr.Textbox(label="article_id", visible=False),
            paragraph=gr.Number(0, precision=0, label="paragraph", visible=False),
            action=gr.Textbox(label="action", visible=False),
            text=gr.Textbox(label="text", visible=False),
            format=gr.Textbox("html", label="format", visible=False),
            markdown=gr.Textbox(label="markdown", visible=False),
            article_out=gr.Textbox(label="article_id", visible=False),
            file=gr.File(label="file", visible=False),
        )


def composer_tab(
    defaults: WritingSettings, max_tokens: int, capability_notes: tuple[str, ...]
) -> ComposerView:
    with gr.Tab(say("ui.tab"), id="composer") as tab:
        article = gr.BrowserState(None, storage_key="ixc-studio-article")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240, elem_classes="sidebar-column"):
                new = gr.Button(say("ui.new"), variant="primary", elem_id="new-article")
                articles = gr.Radio([], label=say("ui.articles"), elem_classes="conversation-list",
                                    elem_id="article-list")  # fmt: skip
                with gr.Accordion(say("ui.manage"), open=False):
                    title = gr.Textbox(label=say("ui.name"), max_lines=1, elem_id="article-title")
                    with gr.Row():
                        rename = gr.Button(say("ui.rename"), size="sm")
                        delete = gr.Button(
                            say("ui.delete"), size="sm", variant="stop", elem_id="delete-article"
                        )
                with gr.Accordion(say("ui.library"), open=False, elem_id="library"):
                    library_files = gr.File(label=say("ui.library_files"), file_count="multiple",
                                            file_types=["image"], type="filepath")  # fmt: skip
                    with gr.Row():
                        library_add = gr.Button(say("ui.library_add"), size="sm")
                        library_index = gr.Button(say("ui.library_index"), size="sm", elem_id="library-index")
                        library_stop = gr.Button(say("ui.library_stop"), size="sm", variant="stop")
                    library_status = gr.Markdown(elem_id="library-status")
            with gr.Column(scale=4):
                instruction = gr.Textbox(label=say("ui.instruction"), lines=4, elem_id="compose-instruction",
                                         placeholder=say("ui.instruction_placeholder"))  # fmt: skip
                with gr.Accordion(say("ui.references"), open=False):
                    references = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                         show_label=False, elem_id="compose-references")  # fmt: skip
                with gr.Row():
                    form = _form(defaults)
                    step_by_step = gr.Checkbox(False, label=say("ui.step_by_step"))
                with gr.Accordion(say("ui.settings"), open=False, elem_id="writing-settings"):
                    with gr.Row():
                        form += _writing_form(defaults, max_tokens)
                    if capability_notes:
                        gr.Markdown(
                            say("ui.capabilities", notes=" ".join(capability_notes)), elem_classes="hint"
                        )
                with gr.Row():
                    compose = gr.Button(say("ui.compose"), variant="primary", elem_id="compose")
                    resume = gr.Button(say("ui.continue"), elem_id="compose-continue")
                    stop = gr.Button(say("ui.stop"), variant="stop", elem_id="compose-stop")
                    restart_step = gr.Dropdown(
                        [(say(f"step.{s}"), s) for s in STEPS], value="draft", show_label=False, scale=1
                    )
                    restart = gr.Button(say("ui.restart"), elem_id="compose-restart")
                status = gr.Markdown(say("ui.idle"), elem_id="compose-status")
                with gr.Accordion(say("ui.text_steps"), open=False, elem_id="text-steps"):
                    outline = gr.Textbox(label=say("ui.outline"), lines=6, elem_id="compose-outline")
                    draft = gr.Textbox(label=say("ui.draft"), lines=8, elem_id="compose-draft")
                preview = gr.HTML(label=say("ui.preview"), elem_id="article-preview")
                with gr.Accordion(say("ui.edit"), open=True, elem_id="article-edit"):
                    with gr.Row():
                        paragraph = gr.Number(1, precision=0, minimum=1, label=say("ui.paragraph"), scale=1,
                                              elem_id="edit-paragraph")  # fmt: skip
                        action = gr.Radio(list(EDIT_ACTIONS), value="rewrite", label=say("ui.action"),
                                          scale=4, elem_id="edit-action")  # fmt: skip
                    edit_text = gr.Textbox(label=say("ui.edit_text"), lines=2, elem_id="edit-text")
                    with gr.Row():
                        apply = gr.Button(say("ui.apply"), variant="primary", elem_id="edit-apply")
                        up = gr.Button(say("ui.up"))
                        down = gr.Button(say("ui.down"))
                        undo = gr.Button(say("ui.undo"), elem_id="edit-undo")
                        redo = gr.Button(say("ui.redo"), elem_id="edit-redo")
                    with gr.Row():
                        caption = gr.Textbox(label=say("ui.caption"), scale=4, elem_id="edit-caption")
                        search = gr.Button(say("ui.search"), scale=1, elem_id="edit-search")
                    gallery = gr.Gallery(label=say("ui.gallery"), columns=4, height="auto",
                                         allow_preview=False, elem_id="edit-gallery")  # fmt: skip
                    with gr.Row():
                        remove_image = gr.Button(say("ui.remove_image"), elem_id="edit-remove-image")
                        upload_image = gr.File(label=say("ui.upload_image"), file_types=["image"],
                                               type="filepath", height=90)  # fmt: skip
                with gr.Row():
                    export_format = gr.Radio(list(EXPORT_FORMATS), value="html", label=say("ui.format"))
                    export = gr.Button(say("ui.export"), elem_id="export")
                    export_file = gr.File(
                        label=say("ui.export_file"), interactive=False, elem_id="export-file"
                    )
        ports = api_ports(defaults, max_tokens)
    return ComposerView(
        tab=tab, article=article, new=new, articles=articles, title=title, rename=rename, delete=delete,
        instruction=instruction, references=references, form=form, step_by_step=step_by_step, compose=compose,
        resume=resume, stop=stop, restart_step=restart_step, restart=restart, status=status, outline=outline,
        draft=draft, preview=preview, paragraph=paragraph, action=action, edit_text=edit_text, apply=apply,
        up=up, down=down, undo=undo, redo=redo, caption=caption, search=search, gallery=gallery,
        remove_image=remove_image, upload_image=upload_image, export_format=export_format, export=export,
        export_file=export_file, library_files=library_files, library_add=library_add,
        library_index=library_index, library_stop=library_stop, library_status=library_status, api=ports,
    )  # fmt: skip
