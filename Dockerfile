# personaflow image: one image, one entry point (`personaflow`), the service is the argument:
#   docker run personaflow worker | sink | topics create | dlq list ...
# Build:  docker build -t personaflow:0.1.0 .
# the full image: gcc and the Python headers, for the compiled domain core (docs/native.md)
FROM python:3.11 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install "setuptools>=77" wheel mypy
COPY pyproject.toml setup.py README.md ./
COPY schemas ./schemas
COPY processors ./processors
COPY streams ./streams
COPY sinks ./sinks
COPY personaflow ./personaflow
COPY bench ./bench
# build a wheel so the runtime image carries no build tools; processors/ compiled with mypyc
RUN PERSONAFLOW_NATIVE_BUILD=1 pip wheel --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PERSONAFLOW_DATA_DIR=/var/lib/personaflow
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/personaflow --create-home personaflow
USER 10001
WORKDIR /var/lib/personaflow
# RocksDB tables and local state; mount a volume here (one per worker replica)
VOLUME ["/var/lib/personaflow"]
# 6066: worker web (/metrics, /healthz, /readyz); 8090: sink HTTP (/webhooks/sendgrid, /metrics)
EXPOSE 6066 8090
ENTRYPOINT ["personaflow"]
CMD ["--help"]
