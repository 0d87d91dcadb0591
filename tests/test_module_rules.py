"""DESIGN.md's module rules, checked on the source and on what a fresh interpreter really loads.

The static checks read every import statement of every module under `ixc_app/` (also those inside functions
and `TYPE_CHECKING` blocks: a lazy import is still a dependency), so a violation fails with the module, the
line and the import. The dynamic checks confirm that the front ends' packages load no torch at all, whatever
their imports pull in indirectly.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "ixc_app"
MAX_MODULE_LINES = 400
HTTP_LIBRARIES = ("httpx", "fastapi", "starlette", "uvicorn", "requests", "aiohttp", "urllib3", "openai")
ENGINE_IMPLEMENTATIONS = ("ixc_app.engines.native", "ixc_app.engines.remote", "ixc_app.engines.turbomind")
MODEL_LOGIC = ("ixc_app.ixc.template", "ixc_app.ixc.budget", "ixc_app.ixc.hd")


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, dotted (`ixc_app.ui.layout`)."""
    target: str
    """What it imports, dotted and absolute (`from . import x` resolved, `from a import b` as `a.b`)."""
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """The imports of the module at `path` (its text, or `source` in its place)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [Import(name, f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(
    source: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    """Imports from modules in `source` packages of anything in `forbidden` (unless also in `allowed`)."""
    return [
        str(imp)
        for imp in all_imports()
        if within(imp.module, *source) and within(imp.target, *forbidden) and not within(imp.target, *allowed)
    ]


def test_front_ends_hold_no_model_logic_no_torch_and_no_engine_implementation() -> None:
    """ui/ and serve/ translate a protocol to use-case calls; the engine reaches them through the protocol."""
    forbidden = ("torch", *ENGINE_IMPLEMENTATIONS, *MODEL_LOGIC)
    assert violations(("ixc_app.ui", "ixc_app.serve"), forbidden) == []


def test_use_cases_import_no_gradio_no_torch_and_no_http() -> None:
    assert violations(("ixc_app.chat", "ixc_app.compose"), ("gradio", "torch", *HTTP_LIBRARIES)) == []


def test_engines_import_none_of_the_app_around_them() -> None:
    app_modules = tuple(
        f"ixc_app.{name}"
        for name in (
            "config",
            "media",
            "ui",
            "chat",
            "compose",
            "serve",
            "store",
            "bootstrap",
            "logging_setup",
        )
    )
    assert violations(("ixc_app.engines",), ("gradio", *app_modules)) == []


def test_ixc_imports_nothing_of_the_app_but_itself() -> None:
    assert violations(("ixc_app.ixc",), ("ixc_app",), allowed=("ixc_app.ixc",)) == []


def test_i18n_imports_nothing_of_the_app_so_every_layer_may_speak() -> None:
    """Every layer says its sentences through `ixc_app.i18n`, so it must stay a leaf: no app module, no
    Gradio (the UI tells it where the request's language is read)."""
    assert violations(("ixc_app.i18n",), ("ixc_app", "gradio", "torch"), allowed=("ixc_app.i18n",)) == []


def test_media_imports_only_the_ixc_facts_and_the_languages() -> None:
    allowed = ("ixc_app.media", "ixc_app.ixc", "ixc_app.i18n")
    assert violations(("ixc_app.media",), ("ixc_app", "gradio", "torch"), allowed=allowed) == []


def test_only_bootstrap_knows_which_engine_runs() -> None:
    """Outside `engines/` itself, engine implementations are imported by the composition root alone."""
    offenders = [
        str(imp)
        for imp in all_imports()
        if within(imp.target, *ENGINE_IMPLEMENTATIONS)
        and not within(imp.module, "ixc_app.engines", "ixc_app.bootstrap")
    ]
    assert offenders == []


def test_the_checker_sees_a_forbidden_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import ixc_app.config` added to an engine module, even in a function, fails the engine rule."""
    engine_module = PACKAGE / "engines" / "native" / "engine.py"
    tampered = (
        engine_module.read_text(encoding="utf-8") + "\n\ndef _f() -> None:\n    import ixc_app.config\n"
    )
    honest = imports_of

    def reading_tampered(path: Path, source: str | None = None) -> list[Import]:
        return honest(path, tampered if path == engine_module else source)

    monkeypatch.setitem(globals(), "imports_of", reading_tampered)
    offender = r"ixc_app\.engines\.native\.engine \(line \d+\) imports ixc_app\.config"
    with pytest.raises(AssertionError, match=offender):
        test_engines_import_none_of_the_app_around_them()


def test_no_module_is_over_the_size_rule() -> None:
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def loaded_modules(*imports: str) -> set[str]:
    code = "import json, sys\n" + "".join(f"import {m}\n" for m in imports)
    code += "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out))


def test_ui_chat_and_store_load_no_torch_and_no_engine_implementation() -> None:
    loaded = loaded_modules("ixc_app.ui", "ixc_app.chat", "ixc_app.store", "ixc_app.media")
    assert "torch" not in loaded
    assert not any(within(m, *ENGINE_IMPLEMENTATIONS) for m in loaded)


def test_the_server_and_the_remote_engine_load_no_torch_and_no_gradio() -> None:
    """An app box or a relay server needs no torch; the server over HTTP needs no Gradio."""
    loaded = loaded_modules("ixc_app.serve", "ixc_app.serve.app", "ixc_app.engines.remote")
    assert "torch" not in loaded
    assert "gradio" not in loaded
    assert not any(within(m, "ixc_app.engines.native", "ixc_app.ui") for m in loaded)


@pytest.mark.parametrize(
    "module",
    [
        "ixc_app.ixc.template",
        "ixc_app.ixc.budget",
        "ixc_app.ixc.hd",
        "ixc_app.ixc.video",
        "ixc_app.engines.native",
    ],
)
def test_model_side_loads_no_gradio(module: str) -> None:
    assert "gradio" not in loaded_modules(module)


def test_template_and_budget_count_images_without_torch() -> None:
    assert "torch" not in loaded_modules("ixc_app.ixc.template", "ixc_app.ixc.budget")
