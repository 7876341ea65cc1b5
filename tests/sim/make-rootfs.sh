#!/usr/bin/env bash
# make-rootfs.sh OUT
#
# Builds a minimal Debian-looking container rootfs under OUT (wiped first):
# busybox-static with applet symlinks in /bin, the host's libc.so.6 and dynamic
# loader (enough to run a dynamically linked C program such as the simulated
# nvidia-smi once its libraries are injected), /etc/debian_version, passwd,
# group. No ldconfig, no /etc/ld.so.cache, nothing from NVIDIA: those are the
# hook's job.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi
BUSYBOX=${BUSYBOX:-/bin/busybox}

rm -rf -- "$1"
mkdir -p -- "$1"
OUT=$(cd -- "$1" && pwd -P)

mkdir -p "$OUT"/{bin,proc,sys,dev,tmp,etc,root,run,usr/bin,usr/lib/x86_64-linux-gnu,lib/x86_64-linux-gnu,lib64}
chmod 1777 "$OUT/tmp"
chmod 0700 "$OUT/root"

# ---- busybox ---------------------------------------------------------------
cp "$BUSYBOX" "$OUT/bin/busybox"
chmod 0755 "$OUT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    case "$applet" in
        busybox | ldconfig) continue ;;
    esac
    ln -s busybox "$OUT/bin/$applet"
done

# ---- glibc: whatever a dynamically linked C program needs ------------------
BUILD=$(mktemp -d)
trap 'rm -rf -- "$BUILD"' EXIT
printf '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n' >"$BUILD/hello.c"
gcc -O0 -o "$BUILD/hello" "$BUILD/hello.c"
libc=$(ldd "$BUILD/hello" | awk '$1 == "libc.so.6" { print $3 }')
loader=$(ldd "$BUILD/hello" | awk '$1 ~ /ld-linux-x86-64\.so\.2$/ { print $1 }')
if [ -z "$libc" ] || [ -z "$loader" ]; then
    echo "$0: could not find libc.so.6 / ld-linux-x86-64.so.2 with ldd" >&2
    exit 1
fi
cp -L "$libc" "$OUT/lib/x86_64-linux-gnu/libc.so.6"
cp -L "$loader" "$OUT/lib64/ld-linux-x86-64.so.2"
chmod 0755 "$OUT/lib/x86_64-linux-gnu/libc.so.6" "$OUT/lib64/ld-linux-x86-64.so.2"

# ---- /etc ------------------------------------------------------------------
echo 12.11 >"$OUT/etc/debian_version"
cat >"$OUT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$OUT/etc/group" <<'EOF'
root:x:0:
video:x:44:
nogroup:x:65534:
EOF

# ---- sanity: the hook must add these, the template must not have them ------
for bad in "$OUT/etc/ld.so.cache" "$OUT/bin/ldconfig" "$OUT/sbin/ldconfig"; do
    if [ -e "$bad" ] || [ -L "$bad" ]; then
        echo "$0: unexpected $bad" >&2
        exit 1
    fi
done
if [ -n "$(find "$OUT" -iname '*nvidia*' -print -quit)" ]; then
    echo "$0: unexpected NVIDIA file in $OUT" >&2
    exit 1
fi
