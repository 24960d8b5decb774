# The operator image: Node 24 runs the TypeScript sources directly (type
# stripping), so the image carries src/ and production dependencies only.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
# pg_dump/pg_restore for the backup jobs that run this same image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
USER 65532:65532
ENTRYPOINT ["node", "/app/src/cli/main.ts"]
CMD ["operator"]
