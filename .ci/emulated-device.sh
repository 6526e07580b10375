#!/usr/bin/env bash
# CI: make this machine able to run the emulated arm64 device, then build it (or reuse the cached one).
# Installs qemu-user-static, binfmt-support and debootstrap; mounts binfmt_misc and enables qemu-aarch64;
# builds Debian bookworm arm64 with Python 3.11, onnxruntime and LiteRT into $HILBENCH_EMULATED_CACHE
# (default /var/cache/hilbench/arm64-device). Keep that folder between CI runs to skip the build.
# Any failure here exits non-zero: CI must not quietly run without the device (tests/test_emulated.py
# fails under CI=1 when the device is unavailable).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

need=""
command -v qemu-aarch64-static >/dev/null || need="$need qemu-user-static"
command -v update-binfmts >/dev/null || need="$need binfmt-support"
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need="$need debootstrap"
command -v ssh-keygen >/dev/null || need="$need openssh-client"
command -v ip >/dev/null || need="$need iproute2"
if [ -n "$need" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "emulated-device: cannot install$need (no apt-get)" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
  echo "emulated-device: qemu-aarch64 is not enabled in binfmt_misc" >&2
  exit 1
fi

start=$(date +%s)
python3 tests/support/emulated_device.py build
echo "emulated-device: ready in $(( $(date +%s) - start )) s"
