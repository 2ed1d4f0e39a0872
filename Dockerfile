# One image for the API and the worker. Models come inside Python packages (no download at run time).
# torch must be the CPU wheel of 2.13.0: point PIP_EXTRA_INDEX_URL (or PIP_FIND_LINKS) at a source of it.
FROM python:3.11-slim
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAG_DATA_DIR=/data
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY rag ./rag
COPY ingest ./ingest
COPY indexes ./indexes
COPY api ./api
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --system --uid 10001 rag \
    && mkdir -p /data && chown rag /data
USER rag
CMD ["rag", "serve", "--host", "0.0.0.0"]
