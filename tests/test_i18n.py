"""The app's two languages: every sentence said through `tr` and every static text has its Chinese, with the
same placeholders, and the request's language is chosen as the page's switch and the browser say.

The catalogue checks read the source: a `tr` call must name its template as a string literal (so it can be
found here), and a `word` call its key.
"""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from ixc_app.compose.strings import STRINGS
from ixc_app.compose.strings_zh import STRINGS_ZH
from ixc_app.i18n import CATALOGUES, current_language, pick_language, speaking, tr
from ixc_app.i18n.labels import LABELS
from ixc_app.ui.language import composer_texts

PACKAGE = REPO_ROOT / "ixc_app"


def calls_of(name: str) -> list[tuple[Path, int, ast.expr]]:
    """(file, line, first argument) of every call to a function called `name` in the app's source."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == name:
                    found.append((path.relative_to(REPO_ROOT), node.lineno, node.args[0]))
    return found


def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def test_every_tr_template_is_a_literal_with_its_chinese() -> None:
    calls = calls_of("tr")
    assert len(calls) > 50, "the app says its sentences through ixc_app.i18n.tr"
    problems = []
    for path, line, arg in calls:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            problems.append(f"{path}:{line}: tr's template is not a string literal")
        elif arg.value not in CATALOGUES["zh"]:
            problems.append(f"{path}:{line}: no Chinese for {arg.value!r}")
    assert not problems, "\n".join(problems)


def test_translations_keep_the_placeholders() -> None:
    tables = {
        "sentences": {en: (en, zh) for en, zh in CATALOGUES["zh"].items()},
        "labels": LABELS,
        "composer": {key: (STRINGS[key], zh) for key, zh in STRINGS_ZH.items()},
    }
    problems = [
        f"{name} {key!r}: {sorted(placeholders(en))} in English, {sorted(placeholders(zh))} in Chinese"
        for name, table in tables.items()
        for key, (en, zh) in table.items()
        if placeholders(en) != placeholders(zh)
    ]
    assert not problems, "\n".join(problems)


def test_every_composer_string_has_its_chinese() -> None:
    assert set(STRINGS_ZH) == set(STRINGS)


def test_every_word_key_is_a_static_text() -> None:
    problems = []
    for path, line, arg in calls_of("word"):
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            problems.append(f"{path}:{line}: word's key is not a string literal")
        elif arg.value not in LABELS and arg.value not in composer_texts():
            problems.append(f"{path}:{line}: no static text {arg.value!r}")
    assert not problems, "\n".join(problems)


def test_no_catalogue_entry_is_left_unused() -> None:
    said = {arg.value for _, _, arg in calls_of("tr") if isinstance(arg, ast.Constant)}
    assert set(CATALOGUES["zh"]) - said == set()
    named = {arg.value for _, _, arg in calls_of("word") if isinstance(arg, ast.Constant)}
    assert set(LABELS) - named == set()


def test_tr_says_the_current_language_and_english_outside_a_request() -> None:
    template = next(iter(CATALOGUES["zh"]))
    values = {name: 3 for name in placeholders(template)}
    assert current_language() == "en"
    assert tr(template, **values) == template.format(**values)
    with speaking("zh"):
        assert tr(template, **values) == CATALOGUES["zh"][template].format(**values)
    assert current_language() == "en"


@pytest.mark.parametrize(
    ("choice", "accept", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR,fr;q=0.9", "en"),
        (None, "fr-FR,zh-TW;q=0.5", "zh"),
        (None, "en;q=0.2,zh;q=0.9", "zh"),
        (None, "zh;q=0", "en"),
        (None, "zh;q=oops", "en"),
        (None, None, "en"),
        ("zh", "en-US", "zh"),
        ("en", "zh-CN", "en"),
        ("xx", "zh-CN", "zh"),
    ],
)
def test_the_language_is_the_choice_else_the_browsers(choice, accept, expected) -> None:
    assert pick_language(choice, accept) == expected
