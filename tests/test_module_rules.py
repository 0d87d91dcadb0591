"""DESIGN.md's import rules, checked on what a fresh interpreter really loads.

`ui/` (and the chat/store code under it) must not pull in torch or an engine implementation, so the web
front end can run beside a remote engine; `ixc/` and `engines/` must not pull in gradio.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


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
    assert not any(m.startswith("ixc_app.engines.native") for m in loaded)


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
