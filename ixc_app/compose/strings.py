"""Every sentence the composer shows a user, in one table, with its Chinese by the same key (`strings_zh`).

`say(key, **values)` formats one of them in the language of the request being answered
(`ixc_app.i18n.current_language`). The UI's labels are here too (keys starting with `ui.`); those without
placeholders are also the page's static text (`ui.language.word`), which Gradio's frontend translates live.
"""

from __future__ import annotations

from ixc_app.compose.strings_zh import STRINGS_ZH
from ixc_app.i18n import current_language

STRINGS: dict[str, str] = {
    # Steps, as the status line names them
    "step.outline": "Outline",
    "step.draft": "Draft",
    "step.slots": "Image places",
    "step.captions": "Captions",
    "step.candidates": "Candidates",
    "step.select": "Choosing images",
    "step.done": "Done",
    "status.running": "{step}: writing…",
    "status.caption": "Captions: image {n} of {total}…",
    "status.select": "Choosing images: image {n} of {total}…",
    "status.finished": "{step} done.",
    "status.stopped": "Stopped during {step}; what was written is kept. Continue picks up from there.",
    "status.done": "The article is ready: {paragraphs} paragraphs, {images} images.",
    "status.cache": (
        "{step}: {calls} engine calls, {prompt} prompt tokens ({cached} from the prefix cache), "
        "{generated} generated, {seconds:.1f} s"
    ),
    # Notes the article keeps (each said once)
    "note.base_mode": (
        "This engine has no write mode (the article-writing LoRA), so the composer writes in base "
        "mode; results may be less polished."
    ),
    "note.no_beams": (
        "This engine has no beam search, so the article is sampled instead ({beams} beams asked)."
    ),
    "note.beam_search": "This engine has no beam search: more than one beam is sampled instead.",
    "note.no_images": (
        "There are no images to illustrate with: add images to your library or attach reference "
        "images, then run the image steps again."
    ),
    "note.fewer_images": (
        "Only {found} of the {wanted} images could be placed: the library has no more unused images."
    ),
    "note.context_slots": (
        "The article is too long for the model to choose image places; they were spread evenly instead."
    ),
    "note.context_caption": (
        "Paragraph {n} is too far into a long article for the model's context; its caption was "
        "taken from the paragraph."
    ),
    "note.context_select": (
        "The model's context holds {shown} of the candidates for paragraph {n}; the images already "
        "chosen or the other candidates were left out of the choice."
    ),
    "note.context_select_none": (
        "The choice for paragraph {n} does not fit the model's context; the first candidate was taken."
    ),
    # Edits of a paragraph, as the Change choice names them
    "action.rewrite": "rewrite",
    "action.expand": "expand",
    "action.shorten": "shorten",
    "action.insert_before": "insert_before",
    "action.insert_after": "insert_after",
    "action.replace_text": "replace_text",
    "action.delete": "delete",
    # Errors
    "error.empty_instruction": (
        "The instruction is empty; describe the article you want, or paste an outline."
    ),
    "error.long_instruction": (
        "The instruction is {n:,} characters long, over the limit of {limit:,}; shorten it."
    ),
    "error.n_images": "The number of images must be 'auto' or a whole number from 1 to 10, not {value!r}.",
    "error.target_length": (
        "The target length must be a whole number of characters from 0 to 20000, not {value!r}."
    ),
    "error.setting": "{name} must be between {low:g} and {high:g}, not {value!r}.",
    "error.too_many_files": "{n} images were sent at once but at most {limit} are taken; send fewer.",
    "error.not_image": "'{name}' is a video; the composer illustrates with images only.",
    "error.action": "The action must be one of {actions}, not {value!r}.",
    "error.needs_instruction": "Describe the new paragraph in the instruction box first (an outline of it).",
    "error.needs_text": "Type the paragraph's new text first.",
    "error.format": "The export format must be 'markdown-zip' or 'html', not {value!r}.",
    "error.no_paragraphs": "The article has no paragraphs yet; compose it first.",
    "error.step": "There is no step {value!r}; use one of {steps}.",
    "error.context": (
        "The prompt for {step} ({tokens} tokens) does not fit the model's context of {limit} "
        "tokens; shorten the instruction, the outline or the article, or attach fewer reference "
        "images."
    ),
    "error.failed": "The model failed during {step} ({reason}); what was written is kept, so try Continue.",
    "error.unexpected": (
        "The model failed during {step} (the details are in the server log); what was written is "
        "kept, so try Continue."
    ),
    "error.no_caption": "Type a caption to search for first.",
    "error.no_candidate": "That image is no longer among the candidates; search again.",
    "error.library_empty": "The library is empty; upload images to it first.",
    "error.not_found": "This article was not found; it may have been deleted. Start a new one.",
    "error.image_gone": "An image of this article is no longer stored; pick another one.",
    "error.nothing_to_undo": "There is nothing to undo.",
    "error.nothing_to_redo": "There is nothing to redo.",
    "error.no_title": "An article needs a name; type one.",
    "error.no_such_paragraph": "There is no paragraph {n}; the article has {count} paragraphs.",
    "error.came_back_empty": "The new paragraph came back empty; try again or write it by hand.",
    "error.max_paragraphs": "An article holds at most {limit} paragraphs; delete one first.",
    "error.paragraph_empty": "The paragraph would be empty; delete it instead.",
    "error.already_first": "Paragraph {n} is already the first one.",
    "error.already_last": "Paragraph {n} is already the last one.",
    "error.image_in_article": "That image is already in the article; pick another one.",
    # The Composer tab
    "ui.tab": "Composer",
    "ui.new": "New article",
    "ui.articles": "Articles",
    "ui.articles_empty": "Your articles will be listed here.",
    "ui.manage": "Rename or delete",
    "ui.name": "Name",
    "ui.rename": "Rename",
    "ui.delete": "Delete",
    "ui.deleted": "The article was deleted.",
    "ui.instruction": "Instruction or outline",
    "ui.instruction_placeholder": "What should the article be about? Paste material, a topic or an outline.",
    "ui.references": "Reference images (optional)",
    "ui.n_images": "Images",
    "ui.n_images_info": "How many images, or auto",
    "ui.target_length": "Target length (characters, 0 = any)",
    "ui.plan_first": "Outline first, then write",
    "ui.llm_only": "Text only (no images)",
    "ui.step_by_step": "Pause after each step",
    "ui.settings": "Writing settings",
    "ui.sampling": "Sampling",
    "ui.beams": "Beams",
    "ui.beams_info": "1 = no beam search",
    "ui.repetition": "Repetition penalty",
    "ui.max_tokens": "Max new tokens",
    "ui.seed": "Seed (-1 = random)",
    "ui.use_meta": "Use the writing meta instruction",
    "ui.compose": "Compose",
    "ui.continue": "Continue",
    "ui.stop": "Stop",
    "ui.restart": "Run from this step",
    "ui.outline": "Outline (editable)",
    "ui.draft": "Draft (editable; one paragraph per line)",
    "ui.text_steps": "Outline and draft",
    "ui.preview": "Article",
    "ui.edit": "Edit the article",
    "ui.paragraph": "Paragraph",
    "ui.action": "Change",
    "ui.edit_text": "Instruction (rewrite, expand, insert) or new text (replace)",
    "ui.apply": "Apply",
    "ui.up": "Move up",
    "ui.down": "Move down",
    "ui.undo": "Undo",
    "ui.redo": "Redo",
    "ui.caption": "Image caption (search query)",
    "ui.search": "Search again",
    "ui.gallery": "Candidates: click one to use it",
    "ui.remove_image": "Remove image",
    "ui.upload_image": "Replace with an upload",
    "ui.export": "Export",
    "ui.format": "Format",
    "ui.export_file": "Exported file",
    "ui.library": "Image library",
    "ui.library_files": "Add images to your library",
    "ui.library_add": "Add",
    "ui.library_index": "Caption and index",
    "ui.library_stop": "Stop",
    "ui.library_status": "{images} images in your library ({captioned} captioned).",
    "ui.library_progress": "Captioning: {done} of {total} ({made} just now)…",
    "ui.idle": "Write an instruction and press Compose.",
    "ui.paused": "Paused before {step}: edit what you like, then Continue.",
}


def say(key: str, **values: object) -> str:
    table = STRINGS_ZH if current_language() == "zh" else STRINGS
    return table[key].format(**values)
