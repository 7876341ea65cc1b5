#!/usr/bin/env bash
# The fuzz targets (fuzz/fuzz_targets), built and run with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [all] [SECONDS]      every target SECONDS each (default 600), JOBS at a time
#                                        (default 2); prints executions, coverage, corpus size,
#                                        CPU seconds and the verdict per target
#   scripts/fuzz.sh run TARGET [ARTIFACT] [-- LIBFUZZER FLAGS]
#                                        one target on its corpus until stopped (or flags such
#                                        as -max_total_time=60); with ARTIFACT, run that one
#                                        input (a crash file from fuzz/artifacts) to reproduce it
#   scripts/fuzz.sh smoke [SECONDS]      build every target, run each SECONDS (default 5) from the
#                                        kept corpus without changing it; fails on any finding
#   scripts/fuzz.sh corpus               minimise fuzz/corpus (cargo fuzz cmin) and pack it into
#                                        the tracked fuzz/corpus.tar.xz
#   scripts/fuzz.sh lock-check           fuzz/Cargo.lock has the main Cargo.lock's versions
#
# The corpus is kept in git as fuzz/corpus.tar.xz (thousands of small files) and unpacked into
# fuzz/corpus (ignored by git) when that is missing; only `corpus` writes the archive.
# Builds are optimised with debug assertions and overflow checks on (-O -a): an arithmetic
# overflow is a finding. cargo-fuzz needs nightly-only flags (-Zsanitizer); RUSTC_BOOTSTRAP=1
# lets the stable compiler accept them, so a stable toolchain is enough. Needs
# `cargo install cargo-fuzz` and a C++ compiler (libFuzzer is built from source).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
# cargo fuzz keeps its instrumented builds in fuzz/target, apart from the main target dir.
unset CARGO_TARGET_DIR
BUILD_FLAGS=(-O -a)
# Targets that read a whole config.json (or a policy plus one) get inputs up to ~1 MiB and the
# env-key dictionary; the other parsers read small files.
LARGE_TARGETS=" request_plan container_request shim_edits "
out=fuzz/artifacts/run

flags_for() {
    local t=$1
    case "$LARGE_TARGETS" in
    *" $t "*) echo "-max_len=1100000 -dict=fuzz/dicts/request.dict" ;;
    *) echo "" ;;
    esac
}

unpack_corpus() {
    [ -d fuzz/corpus ] || tar -C fuzz -xJf fuzz/corpus.tar.xz
}

# One target for $2 seconds into corpus dir $3 (new inputs) reading also $4... (seeds).
fuzz_for() {
    local t=$1 seconds=$2
    shift 2
    # -rss_limit/-timeout: a hang or a blow-up is a finding too.
    # shellcheck disable=SC2046
    cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$@" -- -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 $(flags_for "$t")
}

run_all() {
    local seconds=${1:-600} jobs=${JOBS:-2}
    unpack_corpus
    cargo fuzz build "${BUILD_FLAGS[@]}"
    mkdir -p "$out"
    local targets
    targets=$(cargo fuzz list)
    export -f fuzz_for flags_for
    export out seconds LARGE_TARGETS
    export BUILD_FLAGS_STR="${BUILD_FLAGS[*]}"
    # shellcheck disable=SC2016
    printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c '
        BUILD_FLAGS=($BUILD_FLAGS_STR); t={}; mkdir -p "fuzz/corpus/$t"
        TIMEFORMAT="%U %S"
        { time fuzz_for "$t" "$seconds" "fuzz/corpus/$t" > "$out/$t.log" 2>&1 \
            || echo FAILED >> "$out/$t.log"; } 2> "$out/$t.time"'
    report $targets
}

report() {
    printf '%-18s %12s %8s %8s %8s %8s %s\n' target execs cov ft corpus cpu_s result
    local t log execs last cov ft corpus cpu result
    for t in "$@"; do
        log=$out/$t.log
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
        last=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1)
        cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
        ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
        corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
        cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$out/$t.time" 2>/dev/null || echo "?")
        result=ok
        grep -q -e 'ERROR: libFuzzer' -e 'panicked' -e FAILED "$log" && result="FINDING (see $log)"
        printf '%-18s %12s %8s %8s %8s %8s %s\n' "$t" "$execs" "$cov" "$ft" "$corpus" "$cpu" "$result"
    done
}

run_one() {
    local t=${1:?usage: scripts/fuzz.sh run TARGET [ARTIFACT] [-- LIBFUZZER FLAGS]}
    shift
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then
        # Reproduce: run exactly this input once, with the target's usual flags.
        local artifact=$1
        shift
        [ "${1:-}" = "--" ] && shift
        # shellcheck disable=SC2046
        exec cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "$artifact" -- $(flags_for "$t") "$@"
    fi
    [ "${1:-}" = "--" ] && shift
    unpack_corpus
    mkdir -p "fuzz/corpus/$t"
    # shellcheck disable=SC2046
    exec cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "fuzz/corpus/$t" -- -timeout=10 \
        -rss_limit_mb=2048 $(flags_for "$t") "$@"
}

# Each target a few seconds from the kept corpus; new inputs go to a scratch directory, so
# neither fuzz/corpus nor the archive changes. Any crash, panic, leak or timeout fails.
smoke() {
    local seconds=${1:-5} scratch failed=""
    lock_check
    scratch=$(mktemp -d)
    # shellcheck disable=SC2064 # the directory is known now; the local is gone at exit
    trap "rm -rf '$scratch'" EXIT
    tar -C "$scratch" -xJf fuzz/corpus.tar.xz
    cargo fuzz build "${BUILD_FLAGS[@]}"
    unchanged fuzz/Cargo.lock "the build changed it: copy Cargo.lock over it, build, commit"
    for t in $(cargo fuzz list); do
        mkdir -p "$scratch/new/$t" "$scratch/corpus/$t"
        if fuzz_for "$t" "$seconds" "$scratch/new/$t" "$scratch/corpus/$t" > "$scratch/$t.log" 2>&1; then
            echo "fuzz smoke: $t ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$') runs)"
        else
            echo "fuzz smoke: $t FAILED; its log:" >&2
            tail -40 "$scratch/$t.log" >&2
            failed="$failed $t"
        fi
    done
    unchanged fuzz/corpus.tar.xz "the smoke must not rewrite the kept corpus"
    [ -z "$failed" ] || { echo "fuzz smoke failed:$failed (reproduce: scripts/fuzz.sh run TARGET fuzz/artifacts/TARGET/crash-...)" >&2; exit 1; }
}

# Fails when tracked FILE differs from git's copy (in a git checkout; elsewhere nothing to
# compare with).
unchanged() {
    git rev-parse --is-inside-work-tree >/dev/null 2>&1 || return 0
    git diff --quiet -- "$1" || { echo "$1 changed: $2" >&2; exit 1; }
}

corpus() {
    unpack_corpus
    cargo fuzz build "${BUILD_FLAGS[@]}"
    mkdir -p "$out"
    for t in $(cargo fuzz list); do
        mkdir -p "fuzz/corpus/$t"
        # shellcheck disable=SC2046
        cargo fuzz cmin "${BUILD_FLAGS[@]}" "$t" "fuzz/corpus/$t" -- $(flags_for "$t") > "$out/$t.cmin.log" 2>&1
    done
    tar -C fuzz --sort=name --owner=0 --group=0 --mtime=@0 -cJf fuzz/corpus.tar.xz corpus
    echo "fuzz/corpus.tar.xz: $(find fuzz/corpus -type f | wc -l) files"
}

# Every package both lock files hold has the same versions in both: fuzz builds test what the
# main build ships.
lock_check() {
    python3 - <<'EOF'
import sys, tomllib
def versions(path):
    found = {}
    for p in tomllib.load(open(path, "rb"))["package"]:
        found.setdefault(p["name"], set()).add(p["version"])
    return found
main, fuzz = versions("Cargo.lock"), versions("fuzz/Cargo.lock")
# Every version the fuzz build uses must be one the main lock has (the main lock may hold more:
# several versions of a crate its dev-dependencies pull in).
drift = [f"{n}: {sorted(main[n])} in Cargo.lock, {sorted(fuzz[n])} in fuzz/Cargo.lock"
         for n in sorted(main.keys() & fuzz.keys()) if not fuzz[n] <= main[n]]
if drift:
    sys.exit("fuzz/Cargo.lock drifted from Cargo.lock (copy Cargo.lock over it and build again):\n  "
             + "\n  ".join(drift))
print(f"fuzz/Cargo.lock: the main lock's versions for all {len(main.keys() & fuzz.keys())} shared packages")
EOF
}

case "${1:-all}" in
run) shift; run_one "$@" ;;
smoke) shift; smoke "$@" ;;
corpus) corpus ;;
lock-check) lock_check ;;
all) shift || true; run_all "$@" ;;
[0-9]*) run_all "$@" ;;
*) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac
