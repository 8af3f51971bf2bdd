# pml-risk: the SMART app under gunicorn, as a non-root user (uid 10001). See docs/deploy.md §3.
#
#   docker build --build-arg BUILD_COMMIT="$(git rev-parse HEAD)" -t pml-risk .
#   docker run --rm --network container:pml-risk-proxy \
#     -v /etc/pml-risk:/etc/pml-risk:ro \
#     -v pml-risk-state:/var/lib/pml-risk \
#     pml-risk
#
# The configuration (/etc/pml-risk/pml-risk.toml) and the private key file are mounted, never
# baked in. The app listens on 127.0.0.1:8000 inside its network namespace: the reverse proxy
# (deploy/nginx.conf) shares that namespace (a Kubernetes pod's sidecar, or Docker's
# --network container:NAME), terminates TLS, buffers slow clients and serves the public JWKS the
# app writes to /var/lib/pml-risk/public/jwks.json. Binding elsewhere is a deliberate
# `[server] host` setting (docs/deploy.md §4).
#
# The base image is pinned to an exact Python release; for a reproducible build pin its digest
# too (FROM python:3.11.14-slim-bookworm@sha256:…, as `docker buildx imagetools inspect` shows
# it) and record it with the image.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY smart_app ./smart_app
COPY static ./static
COPY fhir_fixtures ./fhir_fixtures
COPY docs/clinical-basis.md ./docs/clinical-basis.md
# The wheel carries the templates, static assets, the clinical basis (/basis) and the demo's
# fixture patients as package data (setup.py).
RUN pip wheel --no-deps -w /dist .

FROM python:3.11.14-slim-bookworm
ARG BUILD_COMMIT=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PML_RISK_CONFIG=/etc/pml-risk/pml-risk.toml \
    PML_RISK_PUBLIC_JWKS=/var/lib/pml-risk/public/jwks.json \
    PML_RISK_BUILD_COMMIT=${BUILD_COMMIT}

RUN groupadd --system --gid 10001 pmlrisk \
 && useradd --system --uid 10001 --gid pmlrisk --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pmlrisk

# Dependencies first, exactly as locked and hash-checked (a layer that survives code changes),
# then the app's wheel without resolving anything again.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/pml_risk-*.whl && rm -rf /tmp/dist

# The state folder, the working directory and the only place the app writes: the default
# SQLite session store and key file (instance/), keys mounted or generated here (keys/), the
# audit trail when [audit] path points here (audit/) and the public JWKS (public/).
RUN mkdir -p /var/lib/pml-risk/instance /var/lib/pml-risk/keys /var/lib/pml-risk/audit \
        /var/lib/pml-risk/public \
 && chown -R pmlrisk:pmlrisk /var/lib/pml-risk \
 && chmod 0700 /var/lib/pml-risk/instance /var/lib/pml-risk/keys /var/lib/pml-risk/audit
WORKDIR /var/lib/pml-risk
VOLUME ["/var/lib/pml-risk"]

USER pmlrisk:pmlrisk
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Workers, threads, timeouts and the bind come from [server] in the configuration (default
# 127.0.0.1:8000). serve runs check-config's storage, audit and key checks before any worker.
CMD ["pml-risk", "serve"]
