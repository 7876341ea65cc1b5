#!/usr/bin/env bash
# prerequisites.sh TARGET...    (TARGET: demo, test)
# prerequisites.sh --packages TARGET...
#
# What `make demo` and `make test` (and so CI) need, in one list. Checks each prerequisite of
# the TARGETs; installs what is missing where it can, saying what it installs:
#   - Debian packages with apt-get, when running as root on Debian or Ubuntu (/etc/os-release);
#     elsewhere (not root, another system) it stops with the exact command to run;
#   - rustup components (rustfmt, clippy) and cargo tools (cargo-deny) as the current user;
#   - Rust itself is never installed here (rustup is an installer from the internet): it stops
#     with the command.
# --packages prints the Debian packages of the TARGETs, one per line.
#
# Knobs for testing this script: GPUHOOK_PREREQUISITES_EXTRA adds lines to the list,
# GPUHOOK_OS_RELEASE replaces /etc/os-release, GPUHOOK_APT_GET replaces apt-get.
set -euo pipefail

# One prerequisite per line: <how to install> <how to tell it is there> <targets>.
#   how to install:  apt:<package> | component:<rustup component> | cargo:<crate> | rustup
#   there when:      programs on PATH (a,b) | py:<module> | sub:<cargo subcommand> | /a/file
# Order matters: packages first (gcc links what cargo builds), Rust before its components.
PREREQUISITES="
apt:runc                runc                  demo test
apt:busybox-static      busybox               demo test
apt:gcc                 gcc                   demo test
apt:libc6-dev           /usr/include/stdio.h  demo test
apt:python3             python3               demo test
apt:docker.io           dockerd               test
apt:containerd          containerd,ctr        test
apt:podman              podman                test
apt:python3-jsonschema  py:jsonschema         test
apt:rpm                 rpmbuild              test
apt:lintian             lintian               test
apt:help2man            help2man              test
apt:protobuf-compiler   protoc                test
apt:prometheus          promtool              test
apt:uidmap              newuidmap             test
apt:docker-compose      docker-compose        test
rustup                  cargo                 demo test
component:rustfmt       sub:fmt               test
component:clippy        sub:clippy            test
cargo:cargo-deny        cargo-deny            test
${GPUHOOK_PREREQUISITES_EXTRA:-}
"
OS_RELEASE=${GPUHOOK_OS_RELEASE:-/etc/os-release}
APT_GET=${GPUHOOK_APT_GET:-apt-get}
RUSTUP_COMMAND="curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""

say() { echo "prerequisites: $*" >&2; }

# present CHECK: whether the prerequisite is there.
present() {
    local check=$1 program
    case "$check" in
        py:*) python3 -c "import ${check#py:}" 2>/dev/null ;;
        sub:*) cargo "${check#sub:}" --version >/dev/null 2>&1 ;;
        /*) [ -e "$check" ] ;;
        *)
            for program in ${check//,/ }; do
                command -v "$program" >/dev/null || return 1
            done
            ;;
    esac
}

# Lines of the list that TARGETs need, as "install check".
wanted() {
    local install check targets target
    while read -r install check targets; do
        [ -n "$install" ] || continue
        for target in "$@"; do
            case " $targets " in *" $target "*) echo "$install $check"; break ;; esac
        done
    done <<<"$PREREQUISITES"
}

debian_like() {
    [ -r "$OS_RELEASE" ] || return 1
    local id id_like
    id=$(. "$OS_RELEASE" && echo "${ID:-}")
    id_like=$(. "$OS_RELEASE" && echo "${ID_LIKE:-}")
    case " $id $id_like " in *" debian "* | *" ubuntu "*) return 0 ;; esac
    return 1
}

# Installs the missing Debian packages, or stops saying how.
install_packages() {
    local packages=("$@")
    if debian_like && [ "$(id -u)" = 0 ]; then
        say "installing with apt-get: ${packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "$APT_GET" update -qq </dev/null
        "$APT_GET" install -y -qq "${packages[@]}" </dev/null >/dev/null
    elif debian_like; then
        say "missing Debian packages: ${packages[*]}; install them as root:"
        echo "    apt-get install -y ${packages[*]}" >&2
        exit 1
    else
        say "missing: ${packages[*]} (Debian package names); this script installs packages only on Debian and Ubuntu: install them with your system's package manager"
        exit 1
    fi
}

check() {
    local missing_packages=() install check
    while read -r install check; do
        present "$check" && continue
        case "$install" in
            apt:*) missing_packages+=("${install#apt:}") ;;
        esac
    done < <(wanted "$@")
    [ "${#missing_packages[@]}" -eq 0 ] || install_packages "${missing_packages[@]}"

    while read -r install check; do
        present "$check" && continue
        case "$install" in
            apt:*) say "apt-get installed ${install#apt:}, but $check is still missing"; exit 1 ;;
            rustup)
                say "no Rust toolchain ($check not on PATH); install it with:"
                echo "    $RUSTUP_COMMAND" >&2
                exit 1
                ;;
            component:*)
                say "installing with rustup: component ${install#component:}"
                rustup component add "${install#component:}" </dev/null
                ;;
            cargo:*)
                say "installing with cargo: ${install#cargo:} (a few minutes)"
                cargo install --locked "${install#cargo:}" </dev/null
                ;;
            *) say "unknown installer $install"; exit 2 ;;
        esac
        present "$check" || { say "$install did not provide $check"; exit 1; }
    done < <(wanted "$@")
}

if [ "$#" -eq 0 ]; then
    echo "usage: $0 [--packages] TARGET... (demo, test)" >&2
    exit 2
fi
if [ "$1" = --packages ]; then
    shift
    wanted "$@" | while read -r install _; do
        case "$install" in apt:*) echo "${install#apt:}" ;; esac
    done
    exit 0
fi
check "$@"
