# crm-gateway container image.
#
#   docker build -t crm-gateway:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v crm-audit:/app/var crm-gateway:0.1.0 check-config /etc/crm-gateway/gateway.yaml
#
# Two stages: the first builds wheels (the package and every dependency), the
# second installs only those wheels, so no compiler or pip cache ships. The
# policy engine is not in this image: run the official OPA image next to it
# (openpolicyagent/opa:1.22.3, a sidecar or a compose service) fed by signed
# bundles, and keep `policy.engine: external` (see docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# cargo builds the compiled detectors (native/, Rust with PyO3) into the wheel; it
# stays in this stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cargo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native/ native/
COPY gateway/ gateway/
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A fixed, unprivileged uid/gid: Kubernetes `runAsUser`/`fsGroup` and volume
# ownership refer to it.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --shell /usr/sbin/nologin gateway
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/crm_gateway-*.whl && rm -rf /wheels \
    && python -c "from gateway.core import _native"
WORKDIR /app
# Shipped defaults (taxonomy, catalogs, demo directory) and the policy, whose
# schema/output.json the gateway validates decisions against. Root-owned: read-only
# for the gateway user.
COPY config/ /app/config/
COPY rego/ /app/rego/
COPY deploy/config/gateway.yaml /etc/crm-gateway/gateway.yaml
# The only writable place: the audit spool (mount a volume here; with a read-only
# root filesystem it is the volume that is written).
RUN mkdir -p /app/var/audit/spool && chown -R gateway:gateway /app/var
VOLUME ["/app/var"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=4s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/_gateway/health', timeout=3)"]
ENTRYPOINT ["crm-gateway"]
CMD ["serve", "--config", "/etc/crm-gateway/gateway.yaml"]
