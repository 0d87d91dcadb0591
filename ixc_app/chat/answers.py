"""Answers that run on the server, not in a page: one task per conversation, which pages and API calls follow.

Gradio closes an event's generator when its client goes away (a reload, a lost connection), so an answer that
lived in the event would die with the page. Instead each answer runs on a thread of its own, registered here
under (owner, conversation id); an event only follows it, and only Stop (or deleting the conversation) ends
it early. Registering refuses a second answer for a conversation that is still answering, which is what keeps
one conversation to one answer at a time.

The thread runs in a copy of the starting request's context (`contextvars`), where Gradio keeps the request:
so the answer says its sentences (a failure, a note) in the language of the request that started it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ixc_app.chat.conversation import Conversation

Key = tuple[str, str]
FOLLOW_WAKE_S = 0.5
"""How often a follower wakes with nothing new, so Gradio can close it at a yield (it closes only there)."""


Run = Callable[["AnswerTask"], tuple[Conversation, str | None]]
"""Writes the answer, publishing it as it grows; returns the conversation as saved and the failure, if any."""


class AnswerBusy(RuntimeError):
    """The conversation is still answering an earlier message."""


@dataclass
class AnswerTask:
    """One answer being written: the conversation as it streams, and how it ended (`done`, `error`)."""

    key: Key
    latest: Conversation
    stop: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    error: str | None = None
    version: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, conv: Conversation, *, done: bool = False, error: str | None = None) -> None:
        with self.changed:
            self.latest, self.done, self.error = conv, done, error
            self.version += 1
            self.changed.notify_all()

    def finished(self, timeout_s: float) -> Conversation:
        """The conversation once the answer has ended (as saved), or as it stands after `timeout_s`."""
        with self.changed:
            self.changed.wait_for(lambda: self.done, timeout_s)
            return self.latest

    def follow(self, wake_s: float = FOLLOW_WAKE_S) -> Iterator[Conversation]:
        """The conversation each time it changes (and every `wake_s` while it does not), the final last."""
        seen = -1
        while True:
            with self.changed:
                if self.version == seen:
                    self.changed.wait(wake_s)
                seen, conv, done = self.version, self.latest, self.done
            yield conv
            if done:
                return


class AnswerTasks:
    """The answers running now, by conversation. `lock` also guards the caller's check-then-save steps."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._tasks: dict[Key, AnswerTask] = {}

    def get(self, owner: str, conversation_id: str) -> AnswerTask | None:
        return self._tasks.get((owner, conversation_id))

    def start(self, started: Conversation, run: Run) -> AnswerTask:
        """Register the answer of `started` and run `run(task)` on its own thread, in the caller's context
        (its request, so its language); `AnswerBusy` if the conversation already has one running. The task
        is unregistered before its followers learn that it is done, so a follower may send the next message
        at once."""
        key = (started.owner, started.id)
        with self.lock:
            if key in self._tasks:
                raise AnswerBusy()
            task = self._tasks[key] = AnswerTask(key, started)

        def body() -> None:
            final, error = started, None
            try:
                final, error = run(task)
            finally:
                with self.lock:
                    self._tasks.pop(key, None)
                task.publish(final, done=True, error=error)

        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(body,), name=f"answer-{started.id[:8]}", daemon=True
        ).start()
        return task

    def stop(self, owner: str, conversation_id: str) -> bool:
        task = self.get(owner, conversation_id)
        if task is None:
            return False
        task.stop.set()
        return True

    def __len__(self) -> int:
        return len(self._tasks)
