#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 600), JOBS at a time
# (default 2), on the corpus in fuzz/corpus, and prints per target: executions, coverage
# (libFuzzer's `cov`: edges reached; `ft`: features), corpus size, CPU seconds, crashes.
# The corpus is kept in git as fuzz/corpus.tar.xz (thousands of small files): unpacked here
# when fuzz/corpus is missing, minimised (cargo fuzz cmin) and packed again at the end.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer); only the stable toolchain can be installed
# here, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them (`cargo install cargo-fuzz` first).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
jobs=${JOBS:-2}
export RUSTC_BOOTSTRAP=1
[ -d fuzz/corpus ] || tar -C fuzz -xJf fuzz/corpus.tar.xz
cargo fuzz build -O
targets=$(cargo fuzz list)
out=fuzz/artifacts/run
mkdir -p "$out"
run_one() {
    local t=$1
    mkdir -p "fuzz/corpus/$t"
    # -rss_limit/-timeout: a hang or a blow-up is a finding too.
    /usr/bin/time -f "%U %S" -o "$out/$t.time" \
        cargo fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 > "$out/$t.log" 2>&1 || echo "FAILED" >> "$out/$t.log"
}
export -f run_one
export out seconds
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one {}'
for t in $targets; do cargo fuzz cmin -O "$t" "fuzz/corpus/$t" > "$out/$t.cmin.log" 2>&1 || true; done
tar -C fuzz -cJf fuzz/corpus.tar.xz corpus
printf '%-18s %12s %8s %8s %8s %8s %s\n' target execs cov ft corpus cpu_s result
for t in $targets; do
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
