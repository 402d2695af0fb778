#!/bin/sh
# tools/deps.sh: installs what rotor needs to build and test on Debian 12 (or Ubuntu).
# Used by the README's two commands and by CI. Safe to run again: it only installs what is missing.
set -e
PKGS="build-essential pkg-config clang libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools \
ocl-icd-opencl-dev opencl-c-headers pocl-opencl-icd clinfo libutf8proc-dev libsqlite3-dev \
sqlite3 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user util-linux \
libclang-rt-14-dev valgrind zlib1g-dev python3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "rotor: installing:$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi
sh "$(dirname "$0")/lavapipe.sh" # the tests' lavapipe on Debian 12 (into .deps/, not installed)
