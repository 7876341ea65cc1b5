#!/usr/bin/env bash
# Profile of the hook's start cost, for finding where its time goes (not a benchmark: strace
# and perf slow what they watch; bench-start.sh gives the figures).
#
# Usage (root): scripts/profile-start.sh OUT_DIR [path/to/gpuhook] [runs]   (runs: default 10)
# Env: RUNC, BUSYBOX as for bench-start.sh; STRACE, PERF (default: strace, perf in PATH; a
#      missing one is said and its part skipped); PROFILE_CONFIG=/path/gpuhook.toml a real
#      driver (default: a simulated one with PROFILE_GPUS, default 1); PROFILE_TMP (/dev/shm)
#      where the bundles go; PROFILE_CAPS (compute,utility); PROFILE_PARALLEL (0): that many
#      starts at once, their context switches recorded (perf sched:sched_switch); PROFILE_ROOTFS a rootfs to copy for each start
#      (default: tests/sim/make-rootfs.sh's busybox one).
# Writes to OUT_DIR: summary.txt (the hook's own wall time in plain starts), timeline.txt (strace -f -T -ttt of one start's hook), syscalls.txt
# (strace -c -w -f over the runs: wall time per syscall), perf.txt (perf report of the gpuhook
# processes over the runs, kernel and user symbols), parallel.txt (the kernel stacks the
# parallel starts' hooks blocked in), hook.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:?usage: profile-start.sh OUT_DIR [gpuhook] [runs]}")
hook=$(realpath "${2:-$repo/target/release/gpuhook}")
runs=${3:-10}
parallel=${PROFILE_PARALLEL:-0}
say() { echo "profile-start.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (runc)"; exit 1; }
runc_bin=$(realpath "$(command -v "${RUNC:-runc}")") || { say "no runc"; exit 1; }
strace_bin=$(command -v "${STRACE:-strace}" || true)
perf_bin=$(command -v "${PERF:-perf}" || true)
[ -n "$strace_bin" ] || say "NOTE: no strace: timeline.txt, syscalls.txt and parallel.txt are skipped"
[ -n "$perf_bin" ] || say "NOTE: no perf: perf.txt is skipped"
mkdir -p "$out"
work=$(mktemp -d "${PROFILE_TMP:-/dev/shm}/gpuhook-profile.XXXXXX")
cleanup() {
    for id in $("$runc_bin" --root "$work/runc" list -q 2>/dev/null); do
        "$runc_bin" --root "$work/runc" delete --force "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${PROFILE_ROOTFS:-}" ]; then
    cp -a "$PROFILE_ROOTFS" "$work/rootfs"
else
    bash "$repo/tests/sim/make-rootfs.sh" "$work/rootfs" >/dev/null
fi
if [ -n "${PROFILE_CONFIG:-}" ]; then
    { grep -v -e '^file *=' -e '^level *=' -e '^\[log\]' "$PROFILE_CONFIG" || true; } > "$work/gpuhook.toml"
else
    sim=$work/sim
    bash "$repo/tests/sim/make-driver.sh" "$sim" "${PROFILE_GPUS:-1}" >/dev/null
    printf '[driver]\nroot = "%s"\ndev-root = "%s"\nproc-driver-root = "%s"\n' \
        "$sim/driver" "$sim/dev" "$sim/proc/driver/nvidia" > "$work/gpuhook.toml"
fi
printf '[log]\nfile = "%s"\n' "$out/hook.log" >> "$work/gpuhook.toml"
: > "$out/hook.log"

# bundle NAME HOOK-ARGV-JSON: a bundle whose prestart hook is that argv (its path the first).
bundle() {
    local b=$work/b-$1
    rm -rf "$b"; mkdir -p "$b"; cp -a "$work/rootfs" "$b/rootfs"
    (cd "$b" && "$runc_bin" spec)
    python3 - "$b" "$2" "$work/gpuhook.toml" "${PROFILE_CAPS:-compute,utility}" <<'PY'
import json, os, sys
b, argv, config, caps = sys.argv[1:]
argv = json.loads(argv)
spec = json.load(open(f"{b}/config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/true"]
spec["process"]["env"] = ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=all", f"NVIDIA_DRIVER_CAPABILITIES={caps}"]
env = [f"GPUHOOK_CONFIG={config}"]
if os.environ.get("LD_LIBRARY_PATH"):
    env.append("LD_LIBRARY_PATH=" + os.environ["LD_LIBRARY_PATH"])
spec["hooks"] = {"prestart": [{"path": argv[0], "args": argv[1:], "env": env}]}
json.dump(spec, open(f"{b}/config.json", "w"))
PY
}
start() {
    "$runc_bin" --root "$work/runc" run --bundle "$work/b-$1" "p-$1-$$" < /dev/null > "$work/$1.out" 2>&1 \
        || { say "start $1 failed:"; cat "$work/$1.out" >&2; }
    "$runc_bin" --root "$work/runc" delete --force "p-$1-$$" >/dev/null 2>&1 || true
    rm -rf "$work/b-$1"
}
hook_argv=$(printf '["%s", "gpuhook", "prestart"]' "$hook")

# Warm up the caches (page cache, dentries) with two plain starts, then time plain starts
# (the hook's elapsed_ms, no tool attached) for reference.
for i in 1 2; do bundle warm "$hook_argv"; start warm; done
: > "$out/hook.log"
for i in $(seq "$runs"); do bundle plain "$hook_argv"; start plain; done
plain=$(grep -o 'elapsed_ms=[0-9.]*' "$out/hook.log" | cut -d= -f2 | sort -n | awk '{ a[NR] = $1 } END { printf "median %.2f ms, min %.2f ms (n=%d)", a[int((NR + 1) / 2)], a[1], NR }')
echo "hook elapsed_ms, no tool attached: $plain" | tee "$out/summary.txt"
: > "$out/hook.log"

if [ -n "$strace_bin" ]; then
    bundle timeline "$(printf '["%s", "strace", "-f", "-T", "-ttt", "-o", "%s", "%s", "prestart"]' \
        "$strace_bin" "$out/timeline.txt" "$hook")"
    start timeline
    for i in $(seq "$runs"); do
        bundle c$i "$(printf '["%s", "strace", "-c", "-w", "-f", "-o", "%s", "%s", "prestart"]' \
            "$strace_bin" "$work/count-$i.txt" "$hook")"
        start c$i
    done
    # strace -c output per run; the summary over all runs, most time first.
    cat "$work"/count-*.txt | awk '$1 ~ /^[0-9.]+$/ && NF >= 5 { t[$NF] += $2; c[$NF] += $4 }
        END { for (s in t) printf "%10.3f ms %8.1f calls/run  %s\n", t[s] * 1000 / n, c[s] / n, s }' n="$runs" \
        | sort -rn > "$out/syscalls.txt"
fi

if [ -n "$perf_bin" ]; then
    for i in $(seq "$runs"); do bundle perf$i "$hook_argv"; done
    "$perf_bin" record -q -a -g -e cpu-clock -F 20000 -o "$work/perf.data" -- bash -c '
        for i in $(seq '"$runs"'); do "$0" --root "$1/runc" run --bundle "$1/b-perf$i" "pp-$i-$$" < /dev/null > /dev/null 2>&1;
            "$0" --root "$1/runc" delete --force "pp-$i-$$" > /dev/null 2>&1; done' "$runc_bin" "$work" 2> "$work/perf-record.err" \
        || { say "perf record failed:"; cat "$work/perf-record.err" >&2; }
    if [ -s "$work/perf.data" ]; then
        cp "$work/perf.data" "$out/perf.data"
        # (|| true: `head` closing the pipe early is not a failure.)
        { echo "== gpuhook processes, self time by symbol"
          "$perf_bin" report -i "$work/perf.data" --comm gpuhook --percentage relative --no-children \
              --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^$' | head -70
          echo "== gpuhook processes, time in each function and what it calls"
          "$perf_bin" report -i "$work/perf.data" --comm gpuhook --percentage relative --children \
              --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -90
        } > "$out/perf.txt" || true
    fi
fi

if [ -n "$perf_bin" ] && [ "$parallel" -gt 0 ]; then
    # Where the hooks of parallel starts wait: each switch away from a gpuhook process, with
    # the kernel stack it blocked in (a lock they all take shows as one stack).
    for i in $(seq "$parallel"); do bundle par$i "$hook_argv"; done
    "$perf_bin" record -q -a -g -e sched:sched_switch -o "$work/sched.data" -- bash -c '
        for i in $(seq '"$parallel"'); do "$0" --root "$1/runc" run --bundle "$1/b-par$i" "pa-$i-$$" < /dev/null > /dev/null 2>&1 & done
        wait' "$runc_bin" "$work" 2> "$work/sched-record.err" \
        || { say "perf record (sched_switch) failed:"; cat "$work/sched-record.err" >&2; }
    if [ -s "$work/sched.data" ]; then
        cp "$work/sched.data" "$out/sched.data"
        # Each switch's stack, below __schedule, cut at the syscall entry: counted per stack.
        { echo "== $parallel starts at once: where gpuhook processes were switched out, by kernel stack"
          echo "   (exit_to_user_mode/irqentry: preempted, waiting for a CPU; anything else: blocked)"
          "$perf_bin" script -i "$work/sched.data" -F comm,ip,sym 2>/dev/null | awk '
              /^[^ \t]/ { flush(); mine = ($1 == "gpuhook"); stack = ""; n = 0; next }
              mine && NF >= 2 && n < 8 && $2 !~ /^(__schedule|schedule|entry_SYSCALL|do_syscall_64)/ { stack = stack (n++ ? " < " : "") $2 }
              function flush() { if (mine && stack != "") count[stack]++ }
              END { flush(); for (s in count) printf "%6d  %s\n", count[s], s }' | sort -rn | head -40
          echo "== switches per process name (runc included)"
          "$perf_bin" report -i "$work/sched.data" --stdio --no-children --sort comm -g none 2>/dev/null \
              | grep -v '^#' | grep -v '^$' | head -15
        } > "$out/parallel.txt" || true
    fi
fi
echo "hook elapsed_ms (under the tools): $(grep -o 'elapsed_ms=[0-9.]*' "$out/hook.log" | cut -d= -f2 | sort -n | tr '\n' ' ')"
ls -la "$out"
