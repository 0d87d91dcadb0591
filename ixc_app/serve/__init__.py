"""Our OpenAI-compatible server: IXC-2.5 over HTTP the way LMDeploy 0.7.3's api_server speaks it.

`python -m ixc_app.serve [flags]` (the app's settings and flags, plus `--api-keys`, `--max-request-size`,
`--served-model-name`) serves the engine `bootstrap` builds, native by default. A front end like `ui/`: it
translates the wire format (`protocol`, `inputs`) to engine requests and back (`app`), and holds no model
logic and no engine implementation.
"""

from ixc_app.serve.app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
