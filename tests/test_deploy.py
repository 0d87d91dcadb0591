"""The deployment files: the Dockerfile (parsed with `dockerfile-parse`), `.dockerignore`, the pinned engine
requirements, and the README's front matter that makes the repository a Hugging Face Docker Space."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from dockerfile_parse import DockerfileParser

from ixc_app.config import parse_settings

SPACE_MODEL = "internlm/internlm-xcomposer2d5-7b"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(REPO_ROOT / "Dockerfile"))


def instructions(dockerfile: DockerfileParser, name: str) -> list[str]:
    return [item["value"] for item in dockerfile.structure if item["instruction"] == name]


def env(dockerfile: DockerfileParser) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in instructions(dockerfile, "ENV"):
        values.update(dict(pair.split("=", 1) for pair in shlex.split(line)))
    return values


def pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    found = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in line for line in found), path.name
    return {name.lower().replace("_", "-"): version for name, version in (line.split("==") for line in found)}


def test_a_cuda_12_runtime_image_that_runs_as_uid_1000_on_port_7860(dockerfile: DockerfileParser) -> None:
    assert re.fullmatch(r"nvidia/cuda:12\.[\d.]+-runtime-ubuntu[\d.]+", dockerfile.baseimage or "")
    assert instructions(dockerfile, "USER")[-1] == "1000"
    assert any("--uid 1000" in run for run in instructions(dockerfile, "RUN"))
    assert instructions(dockerfile, "EXPOSE") == ["7860"]
    entrypoint = json.loads(instructions(dockerfile, "ENTRYPOINT")[-1])
    assert entrypoint[-6:] == ["python", "app.py", "--host", "0.0.0.0", "--engine", "auto"]


def test_state_lives_under_the_writable_data_dir(dockerfile: DockerfileParser) -> None:
    values = env(dockerfile)
    data = values["IXC_DATA_DIR"]
    assert parse_settings([], values).data_dir == Path(data)
    assert values["HF_HOME"].startswith(data + "/") and values["GRADIO_TEMP_DIR"].startswith(data + "/")
    assert values["GRADIO_TEMP_DIR"] == str(parse_settings([], values).upload_dir)
    assert any(data in run and "chown" in run for run in instructions(dockerfile, "RUN"))
    assert values["IXC_LMDEPLOY_ENVS"].startswith("/opt/")


def test_both_environments_are_installed_from_their_pinned_files(dockerfile: DockerfileParser) -> None:
    runs = instructions(dockerfile, "RUN")
    copied = " ".join(instructions(dockerfile, "COPY"))
    assert "requirements.txt" in copied and "requirements-lmdeploy.txt" in copied
    assert any("pip install -r requirements.txt" in run for run in runs)
    assert any("python -m ixc_app.lmdeploy_envs engine" in run for run in runs)
    for run in runs:
        for install in re.findall(r"pip install ([^&]*)", run):
            assert install.split()[0] == "-r", f"a package installed by name, unpinned: {install}"
    pins(REPO_ROOT / "requirements.txt")
    engine = pins(REPO_ROOT / "requirements-lmdeploy.txt")
    assert engine["lmdeploy"] == "0.7.3" and engine["torch"] == "2.6.0" and engine["torchvision"] == "0.21.0"
    assert engine["transformers"].startswith("4.") and int(engine["numpy"].split(".")[0]) < 2
    assert {"decord", "partial-json-parser", "aiohttp"} <= set(engine)
    assert all(name in engine for name in ("nvidia-cublas-cu12", "nvidia-cudnn-cu12", "triton"))


def test_what_the_image_copies_exists_and_the_rest_of_the_working_copy_stays_out(
    dockerfile: DockerfileParser,
) -> None:
    for copy in instructions(dockerfile, "COPY"):
        sources = [part for part in copy.split() if not part.startswith("--")][:-1]
        assert all((REPO_ROOT / source).exists() for source in sources), copy
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "models"} <= ignored


def test_the_readme_front_matter_makes_a_docker_space() -> None:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text.removeprefix("---\n").split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert (meta["sdk"], meta["app_port"], meta["suggested_hardware"]) == ("docker", 7860, "a100-large")
    assert meta["models"] == [SPACE_MODEL]
    assert body.lstrip().startswith("# IXC-2.5 studio")
