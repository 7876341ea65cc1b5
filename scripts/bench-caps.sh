#!/usr/bin/env bash
# Benchmark: what a GPU memory cap costs a container's start, on the simulated driver (its fake
# MPS control daemon starts in about a millisecond; a real one takes longer, see the README).
# Prints, over N starts each, the hook's own wall time (its log's elapsed_ms) and the whole
# `runc run` of /bin/true (with the poststop hook, which stops a pool's daemon after its last
# container), for: no cap; the first container of a pool (a new cap each time: a daemon is
# started, given its defaults, and stopped again at poststop); a later container of a pool
# (another container keeps the pool's daemon running).
# Usage: scripts/bench-caps.sh [path/to/gpuhook] [runs]. Needs root, runc, busybox-static, gcc.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
hook=$(realpath "${1:-$repo/target/release/gpuhook}")
runs=${2:-20}
work=$(mktemp -d /tmp/gpuhook-bench-caps.XXXXXX)
# The MPS root on tmpfs, as /run/gpuhook/mps is.
mps=$(mktemp -d /dev/shm/gpuhook-bench-mps.XXXXXX)
trap 'runc --root "$work/runc" delete --force bench-holder >/dev/null 2>&1 || true; "$hook" --config "$work/gpuhook.toml" mps reap >/dev/null 2>&1 || true; rm -rf "$work" "$mps"' EXIT
bash "$repo/tests/sim/make-rootfs.sh" "$work/rootfs-template"
sim=$work/sim
bash "$repo/tests/sim/make-driver.sh" "$sim" 1 >/dev/null
printf '[driver]\nroot = "%s"\ndev-root = "%s"\nproc-driver-root = "%s"\n[log]\nfile = "%s"\n[memory]\nmps-root = "%s"\n' \
    "$sim/driver" "$sim/dev" "$sim/proc/driver/nvidia" "$work/hook.log" "$mps/root" > "$work/gpuhook.toml"

stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms, min %.2f ms, max %.2f ms (n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR}'; }

# bundle DIR ARGS ENV...: a bundle running ARGS (a JSON list) with gpuhook as prestart and
# poststop hook.
bundle() {
    local b=$1 args=$2; shift 2
    mkdir -p "$b"; cp -a "$work/rootfs-template" "$b/rootfs"
    (cd "$b" && runc spec)
    python3 - "$b" "$hook" "$work/gpuhook.toml" "$args" "$@" <<'PY'
import json, sys
b, hook, config, args, *env = sys.argv[1:]
spec = json.load(open(f"{b}/config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = json.loads(args)
spec["process"]["env"] = ["PATH=/bin"] + env
entry = lambda stage: [{"path": hook, "args": ["gpuhook", stage], "env": [f"GPUHOOK_CONFIG={config}"]}]
spec["hooks"] = {"prestart": entry("prestart"), "poststop": entry("poststop")}
json.dump(spec, open(f"{b}/config.json", "w"))
PY
}

# measure ID NAME ENV-OF-RUN-i: runs $runs containers, ENV a function of the run number.
measure() {
    local id=$1 name=$2 make_env=$3
    : > "$work/hook.log"; : > "$work/runc.txt"
    for i in $(seq "$runs"); do
        local b=$work/b-$id-$i
        # shellcheck disable=SC2046
        bundle "$b" '["/bin/true"]' NVIDIA_VISIBLE_DEVICES=0 $("$make_env" "$i")
        local t0 t1
        t0=$(date +%s.%N)
        runc --root "$work/runc" run --bundle "$b" "bench-$id-$i" </dev/null >/dev/null
        t1=$(date +%s.%N)
        echo "$t0 $t1" | awk '{printf "%.3f\n", ($2-$1)*1000}' >> "$work/runc.txt"
        rm -rf "$b"
    done
    printf '%-28s hook %s\n' "$name:" "$(grep -o 'elapsed_ms=[0-9.]*' "$work/hook.log" | cut -d= -f2 | stats)"
    printf '%-28s runc run %s\n' "" "$(stats < "$work/runc.txt")"
}

no_cap() { :; }
new_cap() { echo "NVIDIA_GPU_MEMORY_LIMIT=$((1024 + $1))M"; }
same_cap() { echo "NVIDIA_GPU_MEMORY_LIMIT=2G"; }

echo "GPU memory caps on the simulated driver, 1 GPU, $runs starts each:"
measure none "no cap" no_cap
measure first "first container of a pool" new_cap
bundle "$work/b-holder" '["/bin/sleep", "600"]' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_GPU_MEMORY_LIMIT=2G
runc --root "$work/runc" run -d --bundle "$work/b-holder" bench-holder </dev/null >/dev/null 2>&1
measure later "later container of a pool" same_cap
