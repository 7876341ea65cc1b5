# The two commands a new user runs are `make demo` and `make test` (see README.md).
.PHONY: demo test bench build deb rpm fuzz fuzz-corpus fuzz-smoke

build:
	cargo build --bins

# A GPU container through the hook: the real driver when one is loaded, else a simulated one.
demo: build
	bash scripts/demo.sh

# Every test: unit tests, then the runc integration tests (need root, runc, busybox-static, gcc).
test:
	CI=$${CI:-} cargo test --all-targets

# The hook's wall time for 1 and 8 simulated GPUs with all capabilities (root, runc); first,
# how the request parse scales with config.json size up to 1 MB (time per entry).
bench:
	cargo run --release --example request_scaling
	cargo build --release --bins
	bash scripts/bench-hook.sh target/release/gpuhook

# Distro packages of the release build, into target/packages (dpkg-deb; rpmbuild from the rpm
# package; help2man). See packaging/build.sh.
deb:
	cargo build --release --bins
	bash packaging/build.sh deb

rpm:
	cargo build --release --bins
	bash packaging/build.sh rpm

# Fuzzing (needs `cargo install cargo-fuzz` and g++; see scripts/fuzz.sh for one target).
# Every target for FUZZ_SECONDS (default 600) each, two at a time, on fuzz/corpus (unpacked from
# the tracked fuzz/corpus.tar.xz, which stays as it is); prints executions and coverage.
fuzz:
	bash scripts/fuzz.sh all $${FUZZ_SECONDS:-600}

# Minimise fuzz/corpus and pack it into fuzz/corpus.tar.xz (after a long `make fuzz`).
fuzz-corpus:
	bash scripts/fuzz.sh corpus

# CI: build every target, run each FUZZ_SMOKE_SECONDS (default 5) from the kept corpus without
# changing it; fails on any crash, panic, leak or timeout.
fuzz-smoke:
	bash scripts/fuzz.sh smoke $${FUZZ_SMOKE_SECONDS:-5}
