"""The remote engine: IXC-2.5 behind an OpenAI-compatible server (LMDeploy's api_server or proxy, or our own
`python -m ixc_app.serve`). `messages` builds the requests, `replies` reads the answers and errors."""

from ixc_app.engines.remote.engine import RemoteEngine, ServerInfo

__all__ = ["RemoteEngine", "ServerInfo"]
