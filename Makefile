# The two commands a new user runs are `make demo` and `make test` (see README.md). Both set
# the machine up first: scripts/prerequisites.sh holds the one list of what they need and
# installs what is missing (as root on Debian/Ubuntu; elsewhere it prints the command).
.PHONY: demo test test-quick bench build deb rpm fuzz fuzz-corpus fuzz-smoke

build:
	cargo build --bins

# A GPU container through the hook: the real driver when one is loaded, else a simulated one.
demo:
	bash scripts/prerequisites.sh demo
	cargo build --bins
	bash scripts/demo.sh

# Everything CI checks, in order; a new step is one more line. The integration tests need root
# (they say NOT RUN otherwise; with CI set they fail instead). cargo deny checks licences,
# bans and sources (deny.toml); its advisories check needs the RustSec database from GitHub,
# which CI cannot reach.
# No incremental state in the full run: it is built once, and incremental files only take disk.
test: export CARGO_INCREMENTAL = 0
test:
	bash scripts/prerequisites.sh test
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo deny check licenses bans sources
	CI=$${CI:-} cargo test --all-targets
	$(MAKE) fuzz-smoke

# Only the tests, for a quick round while developing (no set-up, no lints).
test-quick:
	CI=$${CI:-} cargo test --all-targets

# How the request parse scales with config.json size up to 1 MB (time per entry); the hook's
# wall time for 1 and 8 simulated GPUs with all capabilities; a create's cost against image
# size, GPU count, peak RSS, the runtime shim's own work and 64 creates at once; what a GPU
# memory cap adds to a start (root, runc).
bench:
	cargo run --release --example request_scaling
	cargo build --release --bins
	bash scripts/bench-hook.sh target/release/gpuhook
	bash scripts/bench-start.sh target/release/gpuhook
	bash scripts/bench-caps.sh target/release/gpuhook

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
