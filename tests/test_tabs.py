"""`ui.tabs`: which conversation each tab shows, so what follows an answer stops once the tab left it."""

from __future__ import annotations

from types import SimpleNamespace

from ixc_app.ui.tabs import ShownConversations


def tab(name: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=name)


def test_a_tab_shows_only_the_conversation_it_opened_last() -> None:
    shown = ShownConversations()
    shown.show(tab("a"), "first")
    assert shown.shows(tab("a"), "first")
    shown.show(tab("a"), "")
    assert not shown.shows(tab("a"), "first") and shown.shows(tab("a"), "")
    assert shown.shows(tab("b"), "first")  # another tab's record is its own


def test_tabs_are_forgotten_oldest_first_beyond_the_capacity() -> None:
    shown = ShownConversations(capacity=2)
    for name in ("a", "b", "c"):
        shown.show(tab(name), "elsewhere")
    assert len(shown) == 2
    assert shown.shows(tab("a"), "anything")  # forgotten: taken to show whatever asks
    assert not shown.shows(tab("c"), "anything")


def test_a_call_without_a_tab_is_never_held_back() -> None:
    shown = ShownConversations()
    shown.show(None, "first")
    assert len(shown) == 0 and shown.shows(None, "second")
