# syntax=docker/dockerfile:1
# Two worker images from one build: `cpu-worker` (data stages; wasm/cpu tfjs) and `gpu-worker` (training on
# @tensorflow/tfjs-node-gpu, which needs CUDA 11.x + cuDNN 8 and downloads libtensorflow when installed).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
# tfjs-node's own installer (libtensorflow + prebuilt addon from Google's storage; the image build has internet).
# Optional: without it the CPU workers train on wasm.
RUN npm rebuild @tensorflow/tfjs-node --foreground-scripts || echo "tfjs-node unavailable: CPU workers use wasm"
COPY . .
RUN npm run build
# DuckDB's httpfs extension (s3:// storage): DuckDB would download it at run time, which workers must not need;
# the same PyPI wheel `npm run setup` uses, matched to the bundled DuckDB, into .tools/ where workers load it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip \
 && node -e "require('./dist/lib/storage/httpfs').ensureHttpfs('/app', 'python3', console.log)" \
 && rm -rf /var/lib/apt/lists/* .tools/wheels
RUN npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim AS cpu-worker
# zstd: ingest verifies .zst inputs end to end with it (Node 20 has no zstd decoder; activities/files.ts).
RUN apt-get update && apt-get install -y --no-install-recommends zstd && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production RECFORGE_WORKER_QUEUES=cpu RECFORGE_DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/configs ./configs
COPY --from=build /app/package.json ./
COPY --from=build /app/.tools/duckdb-extensions ./.tools/duckdb-extensions
USER node
CMD ["node", "dist/worker/main.js"]

FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS gpu-worker
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential python3 \
 && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production RECFORGE_WORKER_QUEUES=training RECFORGE_DATA_DIR=/data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/configs ./configs
COPY --from=build /app/package.json ./
COPY --from=build /app/.tools/duckdb-extensions ./.tools/duckdb-extensions
# The optional GPU backend: its install script downloads libtensorflow (needs internet at image build time).
RUN npm install --no-save --foreground-scripts @tensorflow/tfjs-node-gpu@4.22.0
CMD ["node", "dist/worker/main.js"]
