"""A slow node for the proxy's long-stream test: our real server (`ixc_app.serve`) over a fake engine.

Not a test module. `python tests/paced_server.py PORT COUNT STEP` serves, as model
`internlm-xcomposer2d5-paced`, a fake engine (tests only, named as such) that streams COUNT words, one every
STEP seconds, so a stream through the proxy lasts longer than the 100 s LMDeploy 0.7.3's proxy
allows. Everything but the engine is the real server.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from ixc_app.config import Limits
from ixc_app.engines.base import Delta, EngineCapabilities, Finished, Request, StreamItem
from ixc_app.serve import ServerConfig, create_app
from ixc_app.serve.inputs import Defaults

MODEL = "internlm-xcomposer2d5-paced"


class PacedFakeEngine:
    """A fake engine: `count` words, one per `step_s`; stops early when cancelled."""

    def __init__(self, count: int, step_s: float) -> None:
        self.count = count
        self.step_s = step_s
        self.capabilities = EngineCapabilities(name="paced-fake", max_concurrency=4)
        self.tokenizer = None

    def stream(self, request: Request, cancel: threading.Event | None = None) -> Iterator[StreamItem]:
        cancel = cancel or threading.Event()
        for count in range(1, self.count + 1):
            if cancel.wait(self.step_s):
                yield Finished("cancelled", 1, count - 1)
                return
            yield Delta(f"w{count} ")
        yield Finished("stop", 1, self.count)

    def close(self) -> None:
        pass


def main() -> None:
    port, count, step = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    work = Path(tempfile.mkdtemp(prefix="paced-"))
    config = ServerConfig(MODEL, Defaults("", 1, 1, Limits()), work / "requests")
    app = create_app(PacedFakeEngine(count, step), config)  # type: ignore[arg-type]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
