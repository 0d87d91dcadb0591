"""The Composer tab's widgets: the article list, the request, the steps, the preview, editing, export and the
image library. Layout only; the events are wired in `compose_events`."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ixc_app.compose.article import STEPS, WritingSettings
from ixc_app.compose.editing import EDIT_ACTIONS
from ixc_app.compose.options import MAX_BEAMS, MAX_IMAGES, MAX_REPETITION_PENALTY
from ixc_app.compose.service import EXPORT_FORMATS
from ixc_app.ui.language import word

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
STEP_NAMES = {
    "outline": word("step.outline"),
    "draft": word("step.draft"),
    "slots": word("step.slots"),
    "captions": word("step.captions"),
    "candidates": word("step.candidates"),
    "select": word("step.select"),
}
ACTION_NAMES = {
    "rewrite": word("action.rewrite"),
    "expand": word("action.expand"),
    "shorten": word("action.shorten"),
    "insert_before": word("action.insert_before"),
    "insert_after": word("action.insert_after"),
    "replace_text": word("action.replace_text"),
    "delete": word("action.delete"),
}
ENGINE_NOTES = {"note.base_mode": word("note.base_mode"), "note.beam_search": word("note.beam_search")}
"""The composer's names and notes as the page's static text (translated live by the page), by what the
composer calls them."""


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
            label=word("ui.n_images"),
            info=word("ui.n_images_info"),
            elem_id="compose-n-images",
        )
        if visible
        else gr.Textbox("auto", label="n_images", visible=False),
        gr.Number(0, precision=0, minimum=0, label=word("ui.target_length") if visible else "target_length",
                  visible=visible),
        gr.Checkbox(defaults.plan_first, label=word("ui.plan_first") if visible else "plan_first",
                    visible=visible),
        gr.Checkbox(defaults.llm_only, label=word("ui.llm_only") if visible else "llm_only", visible=visible),
    ]  # fmt: skip


def _writing_form(
    defaults: WritingSettings, max_tokens: int, visible: bool = True
) -> list[gr.components.Component]:
    """The writing settings, the rest of `FORM_NAMES`."""
    return [
        gr.Checkbox(defaults.sampling, label=word("ui.sampling") if visible else "sampling", visible=visible),
        gr.Slider(1, MAX_BEAMS, value=defaults.num_beams, step=1,
                  label=word("ui.beams") if visible else "num_beams",
                  info=word("ui.beams_info") if visible else None, visible=visible),
        gr.Slider(1.0, MAX_REPETITION_PENALTY, value=defaults.repetition_penalty, step=0.005,
                  label=word("ui.repetition") if visible else "repetition_penalty", visible=visible),
        gr.Slider(1, max_tokens, value=defaults.max_new_tokens, step=1,
                  label=word("ui.max_tokens") if visible else "max_new_tokens", visible=visible,
                  elem_id="compose-max-tokens" if visible else None),
        gr.Number(-1, precision=0, label=word("ui.seed") if visible else "seed", visible=visible),
        gr.Checkbox(defaults.use_meta, label=word("ui.use_meta") if visible else "use_meta", visible=visible),
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


def composer_tab(defaults: WritingSettings, max_tokens: int, engine_notes: tuple[str, ...]) -> ComposerView:
    with gr.Tab(word("ui.tab"), id="composer") as tab:
        article = gr.BrowserState(None, storage_key="ixc-studio-article")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=240, elem_classes="sidebar-column"):
                new = gr.Button(word("ui.new"), variant="primary", elem_id="new-article")
                articles = gr.Radio([], label=word("ui.articles"), elem_classes="conversation-list",
                                    elem_id="article-list")  # fmt: skip
                with gr.Accordion(word("ui.manage"), open=False):
                    title = gr.Textbox(label=word("ui.name"), max_lines=1, elem_id="article-title")
                    with gr.Row():
                        rename = gr.Button(word("ui.rename"), size="sm")
                        delete = gr.Button(
                            word("ui.delete"), size="sm", variant="stop", elem_id="delete-article"
                        )
                with gr.Accordion(word("ui.library"), open=False, elem_id="library"):
                    library_files = gr.File(label=word("ui.library_files"), file_count="multiple",
                                            file_types=["image"], type="filepath")  # fmt: skip
                    with gr.Row():
                        library_add = gr.Button(word("ui.library_add"), size="sm")
                        library_index = gr.Button(
                            word("ui.library_index"), size="sm", elem_id="library-index"
                        )
                        library_stop = gr.Button(word("ui.library_stop"), size="sm", variant="stop")
                    library_status = gr.Markdown(elem_id="library-status")
            with gr.Column(scale=4):
                instruction = gr.Textbox(label=word("ui.instruction"), lines=4, elem_id="compose-instruction",
                                         placeholder=word("ui.instruction_placeholder"))  # fmt: skip
                with gr.Accordion(word("ui.references"), open=False):
                    references = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                         show_label=False, elem_id="compose-references")  # fmt: skip
                with gr.Row():
                    form = _form(defaults)
                    step_by_step = gr.Checkbox(False, label=word("ui.step_by_step"))
                with gr.Accordion(word("ui.settings"), open=False, elem_id="writing-settings"):
                    with gr.Row():
                        form += _writing_form(defaults, max_tokens)
                    for note in engine_notes:
                        gr.Markdown(ENGINE_NOTES[note], elem_classes="hint")
                with gr.Row():
                    compose = gr.Button(word("ui.compose"), variant="primary", elem_id="compose")
                    resume = gr.Button(word("ui.continue"), elem_id="compose-continue")
                    stop = gr.Button(word("ui.stop"), variant="stop", elem_id="compose-stop")
                    restart_step = gr.Dropdown(
                        [(STEP_NAMES[s], s) for s in STEPS], value="draft", show_label=False, scale=1
                    )
                    restart = gr.Button(word("ui.restart"), elem_id="compose-restart")
                status = gr.Markdown(word("ui.idle"), elem_id="compose-status")
                with gr.Accordion(word("ui.text_steps"), open=False, elem_id="text-steps"):
                    outline = gr.Textbox(label=word("ui.outline"), lines=6, elem_id="compose-outline")
                    draft = gr.Textbox(label=word("ui.draft"), lines=8, elem_id="compose-draft")
                preview = gr.HTML(label=word("ui.preview"), elem_id="article-preview")
                with gr.Accordion(word("ui.edit"), open=True, elem_id="article-edit"):
                    with gr.Row():
                        paragraph = gr.Number(1, precision=0, minimum=1, label=word("ui.paragraph"), scale=1,
                                              elem_id="edit-paragraph")  # fmt: skip
                        action = gr.Radio([(ACTION_NAMES[a], a) for a in EDIT_ACTIONS], value="rewrite",
                                          label=word("ui.action"), scale=4,
                                          elem_id="edit-action")  # fmt: skip
                    edit_text = gr.Textbox(label=word("ui.edit_text"), lines=2, elem_id="edit-text")
                    with gr.Row():
                        apply = gr.Button(word("ui.apply"), variant="primary", elem_id="edit-apply")
                        up = gr.Button(word("ui.up"))
                        down = gr.Button(word("ui.down"))
                        undo = gr.Button(word("ui.undo"), elem_id="edit-undo")
                        redo = gr.Button(word("ui.redo"), elem_id="edit-redo")
                    with gr.Row():
                        caption = gr.Textbox(label=word("ui.caption"), scale=4, elem_id="edit-caption")
                        search = gr.Button(word("ui.search"), scale=1, elem_id="edit-search")
                    gallery = gr.Gallery(label=word("ui.gallery"), columns=4, height="auto",
                                         allow_preview=False, elem_id="edit-gallery")  # fmt: skip
                    with gr.Row():
                        remove_image = gr.Button(word("ui.remove_image"), elem_id="edit-remove-image")
                        upload_image = gr.File(label=word("ui.upload_image"), file_types=["image"],
                                               type="filepath", height=90)  # fmt: skip
                with gr.Row():
                    export_format = gr.Radio(list(EXPORT_FORMATS), value="html", label=word("ui.format"))
                    export = gr.Button(word("ui.export"), elem_id="export")
                    export_file = gr.File(
                        label=word("ui.export_file"), interactive=False, elem_id="export-file"
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
