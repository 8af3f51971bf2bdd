# pml-risk: the SMART app under gunicorn, as a non-root user. See docs/deploy.md.
#
#   docker build -t pml-risk .
#   docker run --rm -p 8000:8000 \
#     -v /etc/pml-risk:/etc/pml-risk:ro -v /var/lib/pml-risk/keys:/var/lib/pml-risk/keys \
#     pml-risk
#
# The configuration (/etc/pml-risk/pml-risk.toml) and the private key file are mounted, never
# baked in. TLS is terminated by the reverse proxy in front (deploy/nginx.conf).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PML_RISK_CONFIG=/etc/pml-risk/pml-risk.toml

RUN groupadd --system --gid 10001 pmlrisk \
 && useradd --system --uid 10001 --gid pmlrisk --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pmlrisk

WORKDIR /app
# Dependencies first (a layer that survives code changes), then the code.
COPY pyproject.toml README.md ./
RUN mkdir smart_app && touch smart_app/__init__.py \
 && pip install . && pip uninstall -y pml-risk && rm -rf smart_app build *.egg-info
COPY smart_app ./smart_app
COPY static ./static
# /basis serves the clinical basis when the checkout has it (.dockerignore lets only it through).
COPY docs/ ./docs/
# Installed in place (-e): /basis finds docs/ and the assets are served from static/, both
# beside the package.
RUN pip install --no-deps -e . && python -m compileall -q smart_app \
 && mkdir -p /var/lib/pml-risk/keys && chown pmlrisk:pmlrisk /var/lib/pml-risk/keys

USER pmlrisk:pmlrisk
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Workers, threads and timeouts come from [server] in the configuration.
CMD ["pml-risk", "serve", "--host", "0.0.0.0", "--port", "8000"]
