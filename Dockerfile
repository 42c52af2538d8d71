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
EXPOSE 9100
CMD ["marketpulse", "--help"]
