FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
COPY pyproject.toml README.md ./
COPY marketpulse ./marketpulse
COPY stream ./stream
COPY models ./models
COPY consumers ./consumers
COPY dashboards ./dashboards
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch \
 && pip install . \
 && python -m models.build
# Runs as an unprivileged user; the derived model files were built above as root and are only read.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin marketpulse \
 && mkdir -p /app/.state && chown marketpulse /app/.state
USER marketpulse
ENV MARKETPULSE_STATE_DIR=/app/.state
EXPOSE 9100
CMD ["marketpulse", "--help"]
