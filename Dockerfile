# Multi-stage: the compiler (LightFM's C extension, built with OpenMP) lives only in the build stage.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sqlrec ./sqlrec
RUN python -m venv /opt/sqlrec && /opt/sqlrec/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/sqlrec/bin/pip install --no-cache-dir . \
    && /opt/sqlrec/bin/python -c "import lightfm._lightfm_fast_openmp"

FROM python:3.11-slim
# libgomp: the OpenMP runtime LightFM's extension links against.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/sqlrec /opt/sqlrec
ENV PATH=/opt/sqlrec/bin:$PATH
WORKDIR /data
ENTRYPOINT ["sqlrec"]
CMD ["demo"]
