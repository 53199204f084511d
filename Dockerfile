# morelia-trio in a container (README, "Deploying"):
#   docker build -t morelia-trio .
#   docker run -d -p 8000:8000 -v morelia-data:/data morelia-trio [serve options...]
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The server alone, at the versions the tests passed with (constraints.txt, `make lock`).
COPY pyproject.toml README.md constraints.txt /tmp/src/
COPY morelia_trio /tmp/src/morelia_trio
RUN pip install --constraint /tmp/src/constraints.txt /tmp/src \
    && rm -rf /tmp/src
COPY packaging/healthcheck.py /usr/local/lib/morelia-trio/healthcheck.py

# An unprivileged user owns the data directory and nothing else.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /data morelia \
    && mkdir /data \
    && chown 10001:10001 /data \
    && chmod 700 /data
VOLUME /data
WORKDIR /data
USER 10001:10001

EXPOSE 8000
# Sends a request through the whole server and expects its answer (packaging/healthcheck.py).
# Once the server serves GET /readyz, the check moves there.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/morelia-trio/healthcheck.py"]
# SIGTERM (docker stop) stops it cleanly after a final snapshot. Options given to
# `docker run` after the image name are appended, and a later option wins.
ENTRYPOINT ["morelia-trio", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
