"""The public `/chat` API endpoint: one message in, the answer streamed out, a conversation id to continue.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    job = client.submit("What is in this picture?", [handle_file("photo.jpg")], "", api_name="/chat")
    for answer_so_far, conversation_id in job: ...
    client.predict("And the colours?", [], conversation_id, api_name="/chat")

Parameters: `message` (text), `files` (images and videos), `conversation_id` ("" starts a new conversation;
pass the id an earlier call returned to continue it), then the generation settings of the chat's settings
panel.
Each streamed value is `(answer so far, conversation id)`. Rejected input and engine failures raise an error
whose message is one sentence. A client that logged in (`Client(url, auth=(user, password))` with
`--auth-file`) starts conversations owned by its user, and an id returned to a user works only for that user
(`identity.Owners`).
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from ixc_app.chat.drafts import Draft
from ixc_app.chat.service import AnswerFailed, ChatService
from ixc_app.ui.errors import user_errors
from ixc_app.ui.identity import Owners, format_handle
from ixc_app.ui.settings_form import SETTING_NAMES, settings_from_form
from ixc_app.ui.uploads import discard_uploads

API_DESCRIPTION = (
    "Send a message with optional images and videos and stream the answer. Pass an empty conversation_id to "
    "start a conversation and the returned conversation_id to continue it. Yields (answer so far, "
    "conversation_id)."
)


class ChatApi:
    def __init__(self, service: ChatService, owners: Owners) -> None:
        self.service = service
        self.owners = owners

    def chat(
        self,
        message: str | None,
        files: list[str] | None = None,
        conversation_id: str | None = None,
        max_new_tokens: float | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        hd_num_single: float | None = None,
        hd_num_multi: float | None = None,
        image_mode: str | None = None,
        use_meta: bool | None = None,
        meta_instruction: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[str, str]]:
        """Everything the browser does in three events, in one: check, ingest, answer.

        The parameter names are the API's: Gradio names an endpoint's parameters after its function's. The
        settings' defaults are the settings panel's values, which Gradio passes when a client leaves them out.
        """
        draft = Draft(text=message or "", files=tuple(files or ()))
        handle = (conversation_id or "").strip()
        arguments = locals()
        form = {name: arguments[name] for name in SETTING_NAMES}
        with user_errors():
            owner, existing = (
                self.owners.handle(handle, request) if handle else (self.owners.new_owner(request), "")
            )
            settings = settings_from_form(form, self.service.limits)
            conv = self.service.open_or_new(owner, existing, settings)
            self.service.check_draft(draft, conv)
            try:
                media = self.service.ingest(draft.files)
            finally:
                discard_uploads(draft.files)
            conv, prepared = self.service.add_message(conv, draft.text, media)
            answer = self.service.answer(conv, prepared)
        handle = format_handle(owner, conv.id)
        yield "", handle
        try:
            for partial in answer:
                yield partial.messages[-1].text, handle
        except AnswerFailed as exc:
            raise gr.Error(str(exc), print_exception=False) from exc
