#!/bin/sh
# tools/lavapipe.sh: on Debian 12, unpacks the lavapipe of bookworm-backports (Mesa 25) into
# .deps/lavapipe without installing it, and writes its loader manifest .deps/lavapipe/lvp.json,
# which tests/run.sh hands the Vulkan loader. Debian 12's own lavapipe (Mesa 22.3) runs the
# memory-model variant of the chained shaders wrongly, so rotor does not use that variant there
# and the tests would not cover it. Elsewhere, and when it cannot fetch, it does nothing
# (the tests then use the system's driver). Called by tools/deps.sh.
set -u
. /etc/os-release 2>/dev/null || exit 0
[ "${VERSION_CODENAME:-}" = bookworm ] || exit 0
dir=$(cd "$(dirname "$0")/.." && pwd)/.deps/lavapipe
[ -f "$dir/lvp.json" ] && [ -n "$(find "$dir/root" -name libvulkan_lvp.so 2>/dev/null)" ] && exit 0
tmp=$(mktemp -d) || exit 0
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
# the mirror the system's own Debian sources use, then deb.debian.org
mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -i debian | grep -v security | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
set -- -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Debug::NoLocking=1
got=0
for uri in $mirror http://deb.debian.org/debian; do
    echo "deb $uri bookworm-backports main" > "$tmp/sources.list"
    if apt-get "$@" update -qq >/dev/null 2>&1 &&
       (cd "$tmp" && apt-get "$@" download -qq mesa-vulkan-drivers/bookworm-backports >/dev/null 2>&1); then
        got=1
        break
    fi
done
if [ $got = 0 ]; then
    echo "rotor: could not fetch bookworm-backports' lavapipe; the tests use the system's" >&2
    exit 0
fi
rm -rf "$dir" && mkdir -p "$dir"
dpkg-deb -x "$tmp"/mesa-vulkan-drivers_*.deb "$dir/root"
lib=$(cd "$dir" && find root -name libvulkan_lvp.so | head -n 1)
[ -n "$lib" ] || { rm -rf "$dir"; exit 0; }
# a library path relative to the manifest: the checkout can move
printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "./%s", "api_version": "1.3.0" } }\n' "$lib" > "$dir/lvp.json"
echo "rotor: lavapipe $(dpkg-deb -f "$tmp"/mesa-vulkan-drivers_*.deb Version) unpacked into .deps/lavapipe for the tests" >&2
