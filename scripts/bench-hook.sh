#!/usr/bin/env bash
# Benchmark: the hook's own wall time (from its log's elapsed_ms) and the whole `runc run`
# with and without gpuhook, for 1 and 8 simulated GPUs with all capabilities.
# Usage: scripts/bench-hook.sh [path/to/gpuhook] [runs]. Needs root, runc, busybox-static, gcc.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
hook=$(realpath "${1:-$repo/target/release/gpuhook}")
runs=${2:-20}
# On tmpfs: on ext4, creating the hook's placeholder files right after the previous rounds'
# rootfs copies were deleted makes the allocator skip recently freed inodes, adding up to 20 ms
# that is the filesystem's, not the hook's (seen with 8 GPUs on the development machine).
work=$(mktemp -d "${BENCH_TMP:-/dev/shm}/gpuhook-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
bash "$repo/tests/sim/make-rootfs.sh" "$work/rootfs-template"

stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms, min %.2f ms, max %.2f ms (n=%d)", a[int((NR+1)/2)], a[1], a[NR], NR}'; }
now_ms() { date +%s.%N; }

for gpus in 1 8; do
    sim=$work/sim$gpus
    bash "$repo/tests/sim/make-driver.sh" "$sim" "$gpus" >/dev/null
    for mode in with without; do
        : > "$work/runc-$mode.txt"
        for i in $(seq "$runs"); do
            b=$work/b-$gpus-$mode-$i
            mkdir -p "$b"; cp -a "$work/rootfs-template" "$b/rootfs"
            printf '[driver]\nroot = "%s"\ndev-root = "%s"\nproc-driver-root = "%s"\n[log]\nfile = "%s"\n' \
                "$sim/driver" "$sim/dev" "$sim/proc/driver/nvidia" "$work/hook-$gpus.log" > "$b/gpuhook.toml"
            (cd "$b" && runc spec)
            python3 - "$b" "$hook" "$mode" <<'PY'
import json, sys
b, hook, mode = sys.argv[1:]
spec = json.load(open(f"{b}/config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
spec["process"]["env"] = ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"]
if mode == "with":
    spec["hooks"] = {"prestart": [{"path": hook, "args": ["gpuhook", "prestart"], "env": [f"GPUHOOK_CONFIG={b}/gpuhook.toml"]}]}
json.dump(spec, open(f"{b}/config.json", "w"))
PY
            t0=$(now_ms)
            runc --root "$work/runc" run --bundle "$b" "bench-$gpus-$mode-$i" </dev/null >/dev/null
            t1=$(now_ms)
            echo "$t0 $t1" | awk '{printf "%.3f\n", ($2-$1)*1000}' >> "$work/runc-$mode.txt"
            rm -rf "$b"
        done
    done
    echo "$gpus GPU(s), all capabilities:"
    echo "  hook wall time (its own):   $(grep -o 'elapsed_ms=[0-9.]*' "$work/hook-$gpus.log" | cut -d= -f2 | stats)"
    echo "  runc run with gpuhook:      $(stats < "$work/runc-with.txt")"
    echo "  runc run without a hook:    $(stats < "$work/runc-without.txt")"
done
