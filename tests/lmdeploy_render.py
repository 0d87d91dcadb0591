"""Render chat requests with LMDeploy 0.7.3's own code; run by the contract tests in the contract environment.

stdin: a JSON list of `messages` lists (OpenAI format, as our remote engine sends them). stdout: a JSON list
of `{"prompt": ..., "images": [params of each image, in order]}`. Not a test module, and not run by the app's
interpreter: `tests/test_lmdeploy_contract.py` runs it with the python of `ixc_app.lmdeploy_envs` "contract".

What runs is LMDeploy's code, imported from the installed package:
- the chat template, `lmdeploy.model.MODELS["internlm-xcomposer2d5"]`. `lmdeploy/__init__.py` imports torch
  (through `messages.py`), so the package object is made without running it; `lmdeploy/model.py` itself
  imports no torch;
- `Xcomposer2VisionModel.proc_messages` and `ModelType` from `lmdeploy/vl/model/xcomposer2.py`, compiled from
  the installed file's own source. That module imports torch at its top for the vision tower, which
  `proc_messages`, a pure static method, never touches.
The one step written here is the part of `VLAsyncEngine` that turns `image_url` parts into `image` items
(keeping their other keys, such as `hd_num`, as LMDeploy does) and picks the text-only or the vision path.
"""

from __future__ import annotations

import ast
import enum
import importlib.util
import json
import sys
import types
from pathlib import Path

ROOT = Path(importlib.util.find_spec("lmdeploy").submodule_search_locations[0])
package = types.ModuleType("lmdeploy")
package.__path__ = [str(ROOT)]
sys.modules["lmdeploy"] = package

from lmdeploy.model import MODELS  # noqa: E402


def _xcomposer2() -> dict:
    path = ROOT / "vl" / "model" / "xcomposer2.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "ModelType":
            wanted.append(node)
        if isinstance(node, ast.ClassDef) and node.name == "Xcomposer2VisionModel":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "proc_messages":
                    item.decorator_list = []
                    wanted.append(item)
    namespace: dict = {"enum": enum}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def render(messages: list[dict], template, xcomposer: dict) -> dict:
    converted, images = [], []
    for message in messages:
        content = message["content"]
        if message["role"] != "user" or isinstance(content, str):
            converted.append(message)
            continue
        items = []
        for part in content:
            if part["type"] == "image_url":
                params = {k: v for k, v in part["image_url"].items() if k != "url"}
                items.append({"type": "image", "image": None, **params})
                images.append(params)
            else:
                items.append(part)
        converted.append({"role": "user", "content": items})
    if not images:
        return {"prompt": template.messages2prompt(messages, True), "images": []}
    prompt, _ = xcomposer["proc_messages"](converted, template, True, xcomposer["ModelType"].XCOMPOSER2D5)
    return {"prompt": prompt, "images": images}


def main() -> None:
    template = MODELS.get("internlm-xcomposer2d5")()
    xcomposer = _xcomposer2()
    cases = json.load(sys.stdin)
    json.dump([render(messages, template, xcomposer) for messages in cases], sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    if "torch" in sys.modules:
        raise SystemExit("torch was imported; the contract environment is meant to work without it")


if __name__ == "__main__":
    main()
