# The two commands a new user runs are `make demo` and `make test` (see README.md). Both set
# the machine up first: scripts/prerequisites.sh holds the one list of what they need and
# installs what is missing (as root on Debian/Ubuntu; elsewhere it prints the command).
.PHONY: demo test test-quick bench build deb rpm fuzz

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
test:
	bash scripts/prerequisites.sh test
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo deny check licenses bans sources
	CI=$${CI:-} cargo test --all-targets

# Only the tests, for a quick round while developing (no set-up, no lints).
test-quick:
	CI=$${CI:-} cargo test --all-targets

# The hook's wall time for 1 and 8 simulated GPUs with all capabilities, and what a GPU memory
# cap adds to a start (root, runc).
bench:
	cargo build --release --bins
	bash scripts/bench-hook.sh target/release/gpuhook
	bash scripts/bench-caps.sh target/release/gpuhook

# Distro packages of the release build, into target/packages (dpkg-deb; rpmbuild from the rpm
# package; help2man). See packaging/build.sh.
deb:
	cargo build --release --bins
	bash packaging/build.sh deb

rpm:
	cargo build --release --bins
	bash packaging/build.sh rpm

# Every fuzz target for FUZZ_SECONDS (default 600) each, two at a time, on fuzz/corpus; prints
# executions and coverage per target (needs `cargo install cargo-fuzz`).
fuzz:
	bash scripts/fuzz.sh $${FUZZ_SECONDS:-600}
