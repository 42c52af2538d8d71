# Two stages: the build stage has torch and transformers to derive the ONNX files from the
# committed weights; the runtime image is the lean install (ONNX Runtime, no torch).
FROM python:3.11-slim AS build
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
COPY pyproject.toml README.md ./
COPY marketpulse ./marketpulse
COPY stream ./stream
COPY models ./models
COPY consumers ./consumers
COPY dashboards ./dashboards
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch \
 && pip install ".[train]" \
 && python -m models.build

FROM python:3.11-slim
WORKDIR /app
# PYTHONPATH: the code under /app is what runs, so it finds the derived files built beside it.
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app MARKETPULSE_STATE_DIR=/app/.state
# The sources and the derived model files from the build stage; then the lean install of them.
COPY --from=build /app /app
RUN pip install .
# Runs as an unprivileged user; the model files are only read.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin marketpulse \
 && mkdir -p /app/.state && chown marketpulse /app/.state
USER marketpulse
EXPOSE 9100
CMD ["marketpulse", "--help"]
