# Two images from this file, a third from deploy/haproxy (see docs/deployment.md):
#   docker build --target serve  -t badnet-filter:serve .   # a serving replica: ONNX Runtime, no TensorFlow
#   docker build --target repair -t badnet-filter:repair .  # repairs (TensorFlow, tfmot), demo models built in
#   docker build -t badnet-filter:proxy deploy/haproxy      # HAProxy: the one entry point
# Your own BadNet instead of the demo (files in ./input):
#   docker build --target repair --build-arg BAD_MODEL=input/badnet.h5 \
#       --build-arg CLEAN_DATA=input/clean.h5 --build-arg MODEL_NAME=mynet -t badnet-filter:repair .
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/srv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODELS_DIR=/srv/models \
    DATA_DIR=/srv/data \
    HOST=0.0.0.0 \
    PORT=8000

RUN groupadd --gid 10001 app && useradd --uid 10001 --gid app --create-home app
WORKDIR /srv
# Dependencies first, from pyproject.toml alone: a code change does not reinstall them.
COPY pyproject.toml scripts/requirements.py /srv/build/
RUN python /srv/build/requirements.py > /srv/build/serve.txt \
    && pip install --no-cache-dir -r /srv/build/serve.txt
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

# A serving replica: serves the folders' published ONNX graphs; repairs go to REPAIR_URL.
FROM base AS serve
COPY modelstore /srv/modelstore
COPY repair /srv/repair
COPY app /srv/app
RUN mkdir -p /srv/models /srv/data /srv/evidence \
    && chown app:app /srv/models /srv/data /srv/evidence
ENV RUNTIME=onnx
USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "app"]

# Repairs and the demo: TensorFlow, tfmot and the demo attackers; serves too.
FROM base AS repair
RUN python /srv/build/requirements.py repair > /srv/build/repair.txt \
    && pip install --no-cache-dir -r /srv/build/repair.txt
COPY modelstore /srv/modelstore
COPY repair /srv/repair
COPY attacks /srv/attacks
COPY app /srv/app
COPY scripts /srv/scripts
COPY input /srv/input
ARG BAD_MODEL=""
ARG CLEAN_DATA=""
ARG MODEL_NAME=""
RUN mkdir -p /srv/models /srv/data /srv/evidence \
    && PY=python BAD_MODEL="$BAD_MODEL" CLEAN_DATA="$CLEAN_DATA" MODEL_NAME="$MODEL_NAME" \
       ./scripts/build_models.sh \
    && chown -R app:app /srv/models /srv/data /srv/evidence
USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "app"]
