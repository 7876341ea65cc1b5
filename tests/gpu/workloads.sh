#!/usr/bin/env bash
# Real workloads through gpuhook on a machine with an NVIDIA GPU (issue 17): PyTorch in a runc
# container next to the same program on the host, CUDA IPC between two containers, and the
# hardened recipe as a runc spec.
#
# Usage (as root): tests/gpu/workloads.sh CARRY_DIR [OUT_DIR]
#   CARRY_DIR   as for run-suite.sh: bin/{gpuhook,runc,busybox}, lib/libseccomp.so.2
#   PYTHON      the Python with a CUDA PyTorch (default: python3 on PATH)
#   WORKLOADS_CONFIG_EXTRA  appended to gpuhook's config (default none; a dry run against
#               tests/sim points it at the simulated driver)
# Builds tests/gpu/vecadd.c and cudaipc.c (gcc). Each container runs under `timeout`; every
# container and file it made is removed on exit. Prints one PASS/FAIL line per check, the
# figures, and "workloads: N passed, M failed"; exits non-zero when a check failed. Everything
# is also written to OUT_DIR/workloads.log.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(realpath "${1:?usage: workloads.sh CARRY_DIR [OUT_DIR]}")
out=${2:-/tmp/gpuhook-gpu-out}
py=${PYTHON:-$(command -v python3)}
mkdir -p "$out"
exec > >(tee "$out/workloads.log") 2>&1

work=$(mktemp -d /tmp/gpuhook-workloads.XXXXXX)
hook=$carry/bin/gpuhook
runc() { LD_LIBRARY_PATH=$carry/lib "$carry/bin/runc" --root "$work/runc-state" "$@"; }
cleanup() {
    for id in $(runc list -q 2>/dev/null); do runc delete --force "$id" >/dev/null 2>&1; done
    rm -rf "$work"
}
trap cleanup EXIT
pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
ko() { echo "FAIL: $1${2:+ -- $2}"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
has() { grep -q -- "$2" "$work/$1"; }
mounts() { awk '{ split($0, halves, " - "); print $5, halves[2] }' /proc/self/mountinfo | sort; }
field() { sed -n "s/^$2: \([^ ]*\).*/\1/p" "$work/$1" | head -1; }

echo "== host"
date -u +"date: %Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=index,name,uuid,memory.total --format=csv,noheader
gpus=$(nvidia-smi -L | grep -c '^GPU ')
uuid0=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
echo "GPUs: $gpus | cgroup: $(stat -fc %T /sys/fs/cgroup) | runc: $(runc --version | head -1)"
mounts_before=$(mounts)
t_start=$(date +%s)

echo "== setup"
t_setup=$(date +%s)
gcc -O2 -o "$work/vecadd" "$repo/tests/gpu/vecadd.c" -ldl || { echo "cannot build vecadd"; exit 1; }
gcc -O2 -o "$work/cudaipc" "$repo/tests/gpu/cudaipc.c" -ldl || { echo "cannot build cudaipc"; exit 1; }
tmpl=$work/rootfs
BUSYBOX=$carry/bin/busybox bash "$repo/tests/sim/make-rootfs.sh" "$tmpl" || exit 1
# The glibc pieces the test programs and the driver's libraries need (the driver files
# themselves come from gpuhook).
for f in "$work/vecadd" "$work/cudaipc" "$(command -v nvidia-smi)" $(ldconfig -p | awk '/libcuda.so.1 |libnvidia-ml.so.1 / && /x86-64/ { print $NF }'); do
    ldd "$f" 2>/dev/null | awk '$3 ~ /^\// { print $3 }'
done | sort -u | grep -v -e nvidia -e cuda | while read -r lib; do cp -L "$lib" "$tmpl/lib/x86_64-linux-gnu/"; done
cp "$work/vecadd" "$work/cudaipc" "$tmpl/bin/"
cp "$repo/tests/gpu/torch_check.py" "$tmpl/torch_check.py"
torch=yes
timeout 300 "$py" "$repo/tests/gpu/torch_rootfs.py" "$tmpl" "$work/python.json" > "$work/rootfs.out" 2>&1 || torch=no
cat "$work/rootfs.out"
check "the host Python has a CUDA PyTorch and its rootfs part was made" test "$torch" = yes
if [ "$torch" = yes ]; then
    cpy=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["python"])' "$work/python.json")
    found=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["driver_files"]))' "$work/python.json")
    check "no NVIDIA driver file in the rootfs or the bound Python directories${found:+ (found: $found)}" test -z "$found"
fi
if [ -n "$(find "$tmpl" \( -name 'libcuda*' -o -name 'nvidia-smi' -o -name 'libnvidia*' \) -print -quit)" ]; then
    ko "rootfs template carries NVIDIA files" "$(find "$tmpl" \( -name 'libcuda*' -o -name 'nvidia-smi' -o -name 'libnvidia*' \))"
fi
printf '[log]\nfile = "%s"\nlevel = "debug"\n%s\n' "$work/hook.log" "${WORKLOADS_CONFIG_EXTRA:-}" > "$work/gpuhook.toml"
echo "setup took $(($(date +%s) - t_setup)) s"

# bundle NAME SCRIPT [spec_edit.py options]: a bundle over a copy of the template, gpuhook as
# its prestart hook.
bundle() {
    local name=$1 script=$2; shift 2
    local b=$work/b-$name
    rm -rf "$b"; mkdir -p "$b"; cp -a "$tmpl" "$b/rootfs"
    (cd "$b" && runc spec) &&
        python3 "$repo/tests/gpu/spec_edit.py" "$b/config.json" --script "$script" \
            --hook "$hook" --hook-config "$work/gpuhook.toml" "$@"
}
# run NAME SECONDS: runs the bundle in the foreground, at most SECONDS; output in
# $work/NAME.{out,err}; returns the container's status (124: timed out).
run() {
    local id="wl-$1-$$"
    timeout --kill-after=10 "$2" env LD_LIBRARY_PATH="$carry/lib" "$carry/bin/runc" --root "$work/runc-state" \
        run --bundle "$work/b-$1" "$id" < /dev/null > "$work/$1.out" 2> "$work/$1.err"
    local rc=$?
    [ "$rc" = 124 ] && echo "(timed out after $2 s)" >> "$work/$1.err"
    runc delete --force "$id" > /dev/null 2>&1
    rm -rf "$work/b-$1"
    return $rc
}
show() { sed "s/^/  $1| /" "$work/$1.out" "$work/$1.err"; }

echo "== 1. PyTorch in a gpuhook container, alternating with the same program on the host"
if [ "$torch" = yes ]; then
    host_count=$("$py" -c 'import torch; print(torch.cuda.device_count())')
    python_dirs=(--python "$work/python.json")
    : > "$work/tflops"
    for round in 1 2 3; do
        t0=$(date +%s)
        timeout 300 "$py" "$repo/tests/gpu/torch_check.py" matmul --devices "$host_count" > "$work/host$round.out" 2> "$work/host$round.err"
        echo "host run $round: rc=$? in $(($(date +%s) - t0)) s"; show "host$round"
        t0=$(date +%s)
        bundle "torch$round" "exec $cpy /torch_check.py matmul --devices 1" "${python_dirs[@]}" --env NVIDIA_VISIBLE_DEVICES=0
        run "torch$round" 300; rc=$?
        echo "container run $round: rc=$rc in $(($(date +%s) - t0)) s"; show "torch$round"
        check "container run $round succeeds (is_available, device_count 1, right product)" test "$rc" = 0
        echo "$round $(field "host$round.out" tflops) $(field "torch$round.out" tflops)" >> "$work/tflops"
    done
    check "container: torch.cuda.is_available() is True" has torch1.out "available: True"
    check "container: device_count() is 1 with NVIDIA_VISIBLE_DEVICES=0" has torch1.out "device_count: 1"
    check "container: the bf16 8192x8192 product matches the float64 reference" has torch1.out "matmul: OK"
    check "host: the same product is right there too" has host1.out "matmul: OK"
    check "container throughput within 5% of the host's (mean of 3 alternating runs each)" python3 - "$work/tflops" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1]) if len(line.split()) == 3]
for r, host, cont in rows:
    print(f"round {r}: host {host} TFLOP/s, container {cont} TFLOP/s")
try:
    host = sum(float(h) for _, h, _ in rows) / len(rows)
    cont = sum(float(c) for _, _, c in rows) / len(rows)
except (ValueError, ZeroDivisionError):
    print("throughput: a run printed no figure")
    sys.exit(1)
print(f"throughput: host {host:.1f} TFLOP/s, container {cont:.1f} TFLOP/s, container/host {cont / host:.3f}")
sys.exit(0 if abs(cont - host) <= 0.05 * host else 1)
PY
    if [ "$gpus" -ge 2 ]; then
        bundle torchall "exec $cpy /torch_check.py matmul --devices $gpus --iters 5" "${python_dirs[@]}" --env NVIDIA_VISIBLE_DEVICES=all
        run torchall 300; show torchall
        check "container: device_count() is $gpus with NVIDIA_VISIBLE_DEVICES=all" has torchall.out "device_count: $gpus"
        bundle torch1gpu "exec $cpy /torch_check.py matmul --devices 1 --iters 5" "${python_dirs[@]}" --env NVIDIA_VISIBLE_DEVICES=1
        run torch1gpu 300; show torch1gpu
        check "container: device_count() is 1 with NVIDIA_VISIBLE_DEVICES=1" has torch1gpu.out "device_count: 1"
    else
        echo "(one GPU here: device_count with NVIDIA_VISIBLE_DEVICES=all is not a separate check)"
    fi
    bundle torchnone "exec $cpy /torch_check.py none" "${python_dirs[@]}" --env NVIDIA_VISIBLE_DEVICES=none
    run torchnone 300; rc=$?; show torchnone
    check "none: the program ends normally, no crash (rc=$rc)" test "$rc" = 0
    check "none: torch.cuda.is_available() is False" has torchnone.out "available: False"
    check "none: using CUDA raises an error naming CUDA, the GPU or the driver" grep -Eiq '^cuda error: [a-z]+: .*(cuda|gpu|driver)' "$work/torchnone.out"
fi

echo "== 2. the hardened recipe as a runc spec: read-only rootfs, no new privileges, no capability, uid 1000, tmpfs /tmp"
probe='id -u; id -g; grep -e ^CapEff -e ^NoNewPrivs /proc/self/status; (touch /probe 2>/dev/null && echo rootfs-writable) || echo rootfs-read-only; touch /tmp/probe && echo tmp-writable; nvidia-smi -L; vecadd; echo "vecadd-exit=$?"'
if [ "$torch" = yes ]; then probe="$probe; exec $cpy /torch_check.py matmul --devices 1 --iters 10"; fi
bundle hard "$probe" ${python_dirs[@]+"${python_dirs[@]}"} --hardened --env NVIDIA_VISIBLE_DEVICES=0 --env NVIDIA_DRIVER_CAPABILITIES=compute,utility
run hard 300; rc=$?; show hard
check "hardened: the container runs as uid 1000, gid 1000" test "$(head -2 "$work/hard.out" | tr '\n' ' ')" = "1000 1000 "
check "hardened: no capability, no new privileges" test -n "$(grep -P '^CapEff:\t0+$' "$work/hard.out")" -a -n "$(grep -P '^NoNewPrivs:\t1$' "$work/hard.out")"
check "hardened: the rootfs is read-only, /tmp writable" test -n "$(grep -x rootfs-read-only "$work/hard.out")" -a -n "$(grep -x tmp-writable "$work/hard.out")"
check "hardened: nvidia-smi sees GPU 0" has hard.out "$uuid0"
check "hardened: the vector add is right" has hard.out "vecadd: OK n=1048576 wrong=0"
if [ "$torch" = yes ]; then
    check "hardened: PyTorch's product is right (rc=$rc)" test "$rc" = 0 -a -n "$(grep 'matmul: OK' "$work/hard.out")"
fi

echo "== 3. CUDA IPC: container B, in A's IPC and PID namespaces, reads memory A exported"
# What `docker run --ipc=container:A --pid=container:A` gives B: A's namespaces and A's /dev/shm
# (Docker binds one shm directory into both). DIR/handle carries the handle from A to B.
mkdir -p "$work/ipc" "$work/shm"
chmod 1777 "$work/shm"
share=(--env NVIDIA_VISIBLE_DEVICES=0 --bind "$work/ipc:/ipc")
bundle ipca "exec cudaipc export /ipc" "${share[@]}" --bind "$work/shm:/dev/shm"
timeout 60 env LD_LIBRARY_PATH="$carry/lib" "$carry/bin/runc" --root "$work/runc-state" \
    run -d --bundle "$work/b-ipca" "wl-ipca-$$" < /dev/null > "$work/ipca.out" 2> "$work/ipca.err"
echo "container A started: rc=$?"
for _ in $(seq 600); do [ -s "$work/ipc/handle" ] && break; sleep 0.1; done
apid=$(runc state "wl-ipca-$$" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
check "IPC: container A allocated GPU memory and wrote its handle (pid ${apid:-none})" test -s "$work/ipc/handle" -a -n "$apid"
if [ -s "$work/ipc/handle" ] && [ -n "$apid" ]; then
    # importer NAME [spec_edit.py options]: B's run, status in $work/NAME.rc
    importer() {
        local name=$1; shift
        bundle "$name" "exec cudaipc import /ipc" "${share[@]}" "$@"
        run "$name" 60; echo $? > "$work/$name.rc"; show "$name"
    }
    importer ipcb --bind "$work/shm:/dev/shm" --join "ipc:/proc/$apid/ns/ipc" --join "pid:/proc/$apid/ns/pid"
    check "IPC: B in A's IPC and PID namespaces reads every value A wrote" has ipcb.out "cudaipc import: OK n=1048576 wrong=0"
    importer ipcc
    check "IPC: C in namespaces of its own cannot open the handle (rc=$(cat "$work/ipcc.rc"))" test "$(cat "$work/ipcc.rc")" != 0 -a -n "$(grep 'cuIpcOpenMemHandle failed' "$work/ipcc.out")"
    # Which of the two namespaces it takes, for the record (no check).
    importer ipcpid --join "pid:/proc/$apid/ns/pid"
    importer ipcipc --bind "$work/shm:/dev/shm" --join "ipc:/proc/$apid/ns/ipc"
    echo "IPC with A's PID namespace only: $(grep -h 'cudaipc import' "$work/ipcpid.out" || echo 'no result line')"
    echo "IPC with A's IPC namespace and /dev/shm only: $(grep -h 'cudaipc import' "$work/ipcipc.out" || echo 'no result line')"
    if ! has ipcb.out "cudaipc import: OK"; then
        importer ipcnet --bind "$work/shm:/dev/shm" --join "ipc:/proc/$apid/ns/ipc" --join "pid:/proc/$apid/ns/pid" --join "net:/proc/$apid/ns/net"
        echo "IPC with A's IPC, PID and network namespaces: $(grep -h 'cudaipc import' "$work/ipcnet.out" || echo 'no result line')"
    fi
fi
touch "$work/ipc/done"
for _ in $(seq 100); do
    [ "$(runc state "wl-ipca-$$" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" = running ] || break
    sleep 0.1
done
show ipca
check "IPC: A held its memory until B was done, then ended cleanly" has ipca.out "cudaipc export: OK"
runc delete --force "wl-ipca-$$" > /dev/null 2>&1
rm -rf "$work/b-ipca"

echo "== 4. the host is left clean"
sleep 1
check "no container left in runc" test -z "$(runc list -q)"
check "the host mount table is as before" test "$(mounts)" = "$mounts_before"
echo "== hook log (last lines)"
tail -3 "$work/hook.log"
echo "workloads took $(($(date +%s) - t_start)) s"
echo "workloads: $pass passed, $fail failed"
[ "$fail" = 0 ]
