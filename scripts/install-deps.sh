#!/usr/bin/env bash
# Installs what fastsync needs on Debian/Ubuntu (as root): the registry and skopeo used by tests,
# benchmarks and the demo, the native core's build headers, then fastsync itself (editable) with
# its test dependencies. Idempotent and quiet when everything is already there.
set -euo pipefail
PYTHON=${PYTHON:-python3}
PKGS=(docker-registry skopeo podman uidmap gnupg squashfs-tools fakeroot apache2-utils time build-essential pkg-config
      libssl-dev libzstd-dev libisal-dev zlib1g-dev openssl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# python3-dev only matters for a Debian python; a pyenv/venv python ships its own headers
if ! "$PYTHON" -c 'import sysconfig,os,sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"],"Python.h")))'; then
  missing+=(python3-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the packaged registry may start a system service on :5000; fastsync never needs it
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
if ! "$PYTHON" -c 'import fastsync.core._native, pytest, hypothesis, xdist, crcmod, nacl, Cython' >/dev/null 2>&1 \
   || [ setup.py -nt fastsync/.built ] || [ -n "$(find ext -newer fastsync/.built -print -quit 2>/dev/null)" ]; then
  echo "install-deps: pip install -e .[test] (building the native core)" >&2
  FASTSYNC_REQUIRE_NATIVE=1 "$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]"
  touch fastsync/.built
fi
