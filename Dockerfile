# IXC-2.5 studio for a Hugging Face Docker Space and for GPU servers. The app's environment and LMDeploy
# 0.7.3's (the TurboMind engine) side by side: they cannot share one (spec: gradio 6 needs huggingface-hub
# >= 1.16, LMDeploy 0.7.3's transformers 4.x needs < 1.0). Runs as uid 1000 on port 7860 with every piece of
# state (conversations, uploads, the Hub cache, downloaded weights) under the writable /data.
#
#   docker build -t ixc-studio .
#   docker run --gpus all -p 7860:7860 -v ixc-data:/data -e IXC_MODEL=internlm/internlm-xcomposer2d5-7b ixc-studio
#
# IXC_MODEL naming a Hub repo downloads the weights into /data on first start (once); a folder path uses it
# as is; unset, the demo model runs. Without a GPU the app runs its native engine (see README, Deployment).
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (the app needs >= 3.11, LMDeploy 0.7.3 <= 3.12); tini reaps what the servers leave as PID 1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common tini \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 user \
    && mkdir -p /app /data /opt/ixc \
    && chown user:user /app /data /opt/ixc
USER 1000
WORKDIR /app

ENV HOME=/home/user \
    PATH=/opt/ixc/venv/bin:$PATH \
    IXC_LMDEPLOY_ENVS=/opt/ixc/lmdeploy-envs \
    IXC_DATA_DIR=/data \
    HF_HOME=/data/hf-home \
    GRADIO_TEMP_DIR=/data/uploads

# The app's environment, from its pinned requirements.
COPY --chown=1000:1000 requirements.txt ./
RUN python3.11 -m venv /opt/ixc/venv && pip install -r requirements.txt

# LMDeploy 0.7.3's environment, from its pinned requirements (every package, --no-deps), where the app finds
# it for --engine auto and turbomind. Made without a GPU here, hence --force.
COPY --chown=1000:1000 requirements-lmdeploy.txt ./
COPY --chown=1000:1000 ixc_app/__init__.py ixc_app/lmdeploy_envs.py ixc_app/
RUN python -m ixc_app.lmdeploy_envs engine --force --verbose

COPY --chown=1000:1000 . .

EXPOSE 7860
ENTRYPOINT ["tini", "--", "python", "app.py", "--host", "0.0.0.0", "--engine", "auto"]
