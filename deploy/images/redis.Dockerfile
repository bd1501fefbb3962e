# Redis from Debian's packages (7.0 in bookworm: no vector sets, so the semantic cache keeps
# its in-process index), on the base of deploy/images/build-base.sh: the compose stack's
# Redis where the public redis image cannot be pulled (`make compose-test`).
#   docker build -f deploy/images/redis.Dockerfile --build-arg BASE=local/ostinato-base:KEY -t local/ostinato-redis deploy/images
ARG BASE
FROM ${BASE}
# Unpinned, as the base's own packages: whatever bookworm serves today.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis /data
USER redis:redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
