# The filtering service with its models built in.
#   docker build -t badnet-filter .                          # demo models (no external data)
#   docker build --build-arg BAD_MODEL=input/badnet.h5 --build-arg CLEAN_DATA=input/clean.h5 \
#                --build-arg MODEL_NAME=mynet -t badnet-filter .   # your BadNet (files in ./input)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    MODELS_DIR=/srv/models \
    DATA_DIR=/srv/data \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --gid 10001 app && useradd --uid 10001 --gid app --create-home app
WORKDIR /srv

COPY pyproject.toml README.md ./
COPY repair ./repair
COPY app ./app
COPY bench ./bench
RUN pip install --no-cache-dir .

COPY scripts ./scripts
COPY input ./input
ARG BAD_MODEL=""
ARG CLEAN_DATA=""
ARG MODEL_NAME=""
RUN mkdir -p /srv/models /srv/data \
    && PY=python BAD_MODEL="$BAD_MODEL" CLEAN_DATA="$CLEAN_DATA" MODEL_NAME="$MODEL_NAME" \
       ./scripts/build_models.sh \
    && chown -R app:app /srv/models /srv/data

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status == 200 else 1)"]
CMD ["python", "-m", "uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]
