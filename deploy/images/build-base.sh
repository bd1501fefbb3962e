#!/usr/bin/env bash
# shellcheck disable=SC2016  # mmdebstrap expands $1 (the rootfs) in the hooks' single quotes
# A Debian bookworm base image with Python 3.11, built from Debian's packages with mmdebstrap
# and imported into the container engine: for machines that reach no image registry (ours).
# deploy/Dockerfile builds on it with --build-arg BASE=<what this prints>.
#
#   deploy/images/build-base.sh CACHE_DIR     prints the image reference, e.g. local/ostinato-base:1a2b3c4d5e6f
#
# The rootfs tarball is cached in CACHE_DIR and the image tagged by a hash of the inputs (this
# script, the packages, the host's extra CA certificates), so a rerun imports or reuses it.
# ENGINE: docker (default) or podman. Needs mmdebstrap (`apt-get install mmdebstrap`).
set -euo pipefail

CACHE_DIR=${1:?usage: $0 CACHE_DIR}
ENGINE=${ENGINE:-docker}
SUITE=bookworm
# python3-venv: deploy/Dockerfile installs into a venv; ca-certificates: pip over TLS
PACKAGES=python3,python3-venv,ca-certificates
# Certificates the host trusts beyond Debian's bundle (e.g. a TLS-inspecting egress proxy's
# CA, without which pip inside the build cannot reach PyPI): the image trusts them too.
EXTRA_CAS=$(find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort || true)

key=$( { cat "$0"; echo "$SUITE $PACKAGES"; for c in $EXTRA_CAS; do cat "$c"; done; } \
       | sha256sum | cut -c1-12)
image=local/ostinato-base:$key
if $ENGINE image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

mkdir -p "$CACHE_DIR"
tarball=$CACHE_DIR/base-$key.tar
if [ ! -s "$tarball" ]; then
  command -v mmdebstrap >/dev/null || { echo "build-base: mmdebstrap is not installed" >&2; exit 1; }
  hooks=()
  if [ -n "$EXTRA_CAS" ]; then
    hooks+=(--customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"')
    for c in $EXTRA_CAS; do
      hooks+=(--customize-hook="copy-in $c /usr/local/share/ca-certificates")
    done
    hooks+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1')
  fi
  echo "build-base: mmdebstrap $SUITE ($PACKAGES) -> $tarball" >&2
  # No documentation, manual pages or translations (copyright files stay): a smaller image.
  mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "${hooks[@]}" "$SUITE" "$tarball.part.tar" >&2  # the name's .tar picks the format
  mv "$tarball.part.tar" "$tarball"
fi
$ENGINE import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tarball" "$image" >/dev/null
echo "$image"
