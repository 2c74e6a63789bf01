# Audio Find: one image for the web app and the workers (the command chooses). Build: docker build -t audiofind .
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-deps -w /wheels .

FROM python:3.11-slim
# ffmpeg decodes M4A/AAC; curl is for the health check
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg curl && rm -rf /var/lib/apt/lists/*
# torch first and pinned, from the CPU index: a looser requirement pulls a multi-GB CUDA build
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home --uid 1000 audiofind && mkdir -p /data/models && chown -R audiofind /data
USER audiofind
# The instance folder; the PANNs checkpoint lives in /data/models (mount it: 327 MB, downloaded once otherwise)
ENV AUDIOFIND_DATA_DIR=/data PORT=8000
VOLUME ["/data/models"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl -fsS "http://127.0.0.1:${PORT}/readyz" || exit 1
CMD ["gunicorn", "-c", "python:audiofind.gunicorn_conf", "audiofind.wsgi:app"]
