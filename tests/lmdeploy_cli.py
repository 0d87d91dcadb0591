"""Parse an `lmdeploy ...` command line with LMDeploy 0.7.3's own argument parser; run in the contract env.

argv: the arguments after `python -m lmdeploy`. stdout: a JSON object of the parsed values (the `api_server`
ones the app sets), plus `chat_template_name`, what LMDeploy's own `get_chat_template` makes of the
`--chat-template` value, and `builtin_template`, whether that names one of its registered templates. Exit
code 2 with argparse's message when the parser refuses the line. Not a test module: `tests/test_turbomind.py`
runs it with the python of `ixc_app.lmdeploy_envs` "contract" (no torch; importing `lmdeploy_render` first
makes the package object without running `lmdeploy/__init__.py`, which imports torch).
"""

from __future__ import annotations

import json
import sys

import lmdeploy_render  # noqa: F401  (the package object, made without lmdeploy/__init__.py)
from lmdeploy.cli.cli import CLI
from lmdeploy.cli.serve import SubCliServe
from lmdeploy.cli.utils import get_chat_template
from lmdeploy.model import MODELS

FIELDS = (
    "model_path",
    "backend",
    "chat_template",
    "model_name",
    "session_len",
    "cache_max_entry_count",
    "tp",
    "server_name",
    "server_port",
    "api_keys",
    "log_level",
)


def main() -> None:
    CLI.add_parsers()
    SubCliServe.add_parsers()
    args = CLI.parser.parse_args(sys.argv[1:])
    parsed = {name: getattr(args, name) for name in FIELDS}
    parsed["runs"] = getattr(args.run, "__name__", "")
    parsed["chat_template_name"] = get_chat_template(args.chat_template).model_name
    parsed["builtin_template"] = args.chat_template in MODELS.module_dict
    json.dump(parsed, sys.stdout)
    sys.stdout.write("\n")
    if "torch" in sys.modules:
        raise SystemExit("torch was imported; the contract environment is meant to work without it")


if __name__ == "__main__":
    main()
