# The hpo image: CLI, workers and dashboard. Linux wheels of torch from PyPI carry CUDA,
# so the same image runs GPU workers (with the NVIDIA container toolkit) and CPU ones.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY hpo ./hpo
COPY models ./models
RUN pip install "torch>=2.3" && pip install .

COPY studies ./studies

# Run unprivileged; the named volumes start out owned by this user.
RUN useradd --create-home --uid 1000 hpo \
    && mkdir -p /artifacts /data \
    && chown hpo:hpo /artifacts /data
USER hpo

CMD ["hpo", "--help"]
