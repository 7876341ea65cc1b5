#!/usr/bin/env bash
# Builds gpuhook's distro packages from already-built binaries.
#
# Usage: packaging/build.sh deb|rpm [OUT_DIR]
#   BIN_DIR            where gpuhook and gpuhook-runtime are (default: target/release)
#   GPUHOOK_PKG_RELEASE  the package release (default 1; bump it to build an upgrade)
#
# Tools: dpkg-deb (dpkg) for the .deb, rpmbuild (Debian's `rpm` package) for the .rpm,
# help2man for the man page, strip (binutils). Plain dpkg-deb/rpmbuild over one staged tree
# rather than cargo-deb/cargo-generate-rpm: both packages get the very same files and
# maintainer logic (packaging/maintainer-lib.sh), nothing more is compiled on a fresh machine,
# and the scripts that run as root on users' nodes stay in plain view.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:?usage: build.sh deb|rpm [OUT_DIR]}
out=$(realpath -m "${2:-$repo/target/packages}")
bin_dir=$(realpath "${BIN_DIR:-$repo/target/release}")
release=${GPUHOOK_PKG_RELEASE:-1}
version=$(awk -F'"' '/^version = / { print $2; exit }' "$repo/Cargo.toml")

for tool in strip help2man gzip; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install binutils help2man)" >&2; exit 1; }
done
for bin in gpuhook gpuhook-runtime; do
    [ -x "$bin_dir/$bin" ] || { echo "build.sh: $bin_dir/$bin missing: run cargo build --release first" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
mkdir -p "$out" "$stage/usr/bin" "$stage/etc/gpuhook" "$stage/usr/share/man/man1" \
    "$stage/usr/share/doc/gpuhook" "$stage/usr/share/containers/oci/hooks.d"

# Files: the same tree for both package formats.
for bin in gpuhook gpuhook-runtime; do
    install -m 0755 "$bin_dir/$bin" "$stage/usr/bin/$bin"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/$bin"
done
ln -s gpuhook "$stage/usr/bin/nvidia-container-runtime-hook"
install -m 0644 "$repo/config/config.toml" "$stage/etc/gpuhook/config.toml"
install -m 0644 "$repo/hook/oci-gpuhook.json" "$stage/usr/share/containers/oci/hooks.d/oci-gpuhook.json"
install -m 0644 "$repo/hook/oci-gpuhook-poststop.json" "$stage/usr/share/containers/oci/hooks.d/oci-gpuhook-poststop.json"
help2man --no-info --version-string="$version" \
    --name="OCI hook that gives containers NVIDIA GPUs, and its admin commands" \
    "$stage/usr/bin/gpuhook" > "$work/gpuhook.1"
sed "s/@VERSION@/$version/" "$repo/packaging/gpuhook-runtime.1" > "$work/gpuhook-runtime.1"
for page in gpuhook gpuhook-runtime; do
    gzip -9n < "$work/$page.1" > "$stage/usr/share/man/man1/$page.1.gz"
done
ln -s gpuhook.1.gz "$stage/usr/share/man/man1/nvidia-container-runtime-hook.1.gz"
install -m 0644 "$repo/README.md" "$stage/usr/share/doc/gpuhook/README.md"
chmod -R u+rwX,go+rX,go-w "$stage"

# The maintainer scripts' shared functions, pasted in place of @MAINTAINER_LIB@.
script() {
    awk -v lib="$repo/packaging/maintainer-lib.sh" '
        /@MAINTAINER_LIB@/ { while ((getline line < lib) > 0) print line; next } { print }' "$1"
}

case "$kind" in
deb)
    deb=$stage/DEBIAN
    mkdir -p "$deb"
    install -m 0644 "$repo/packaging/deb/copyright" "$stage/usr/share/doc/gpuhook/copyright"
    # Debian names the upstream changelog changelog.gz.
    gzip -9n < "$repo/CHANGELOG.md" > "$stage/usr/share/doc/gpuhook/changelog.gz"
    chmod 0644 "$stage/usr/share/doc/gpuhook/changelog.gz"
    install -D -m 0644 "$repo/packaging/deb/lintian-overrides" "$stage/usr/share/lintian/overrides/gpuhook"
    sed -e "s/@VERSION@/$version/g" -e "s/@RELEASE@/$release/g" -e "s/@DATE@/$(date -R -u)/" \
        "$repo/packaging/deb/changelog.in" | gzip -9n > "$stage/usr/share/doc/gpuhook/changelog.Debian.gz"
    chmod 0644 "$stage/usr/share/doc/gpuhook/changelog.Debian.gz"
    # The newest glibc symbol version the binaries use is the libc6 they need.
    glibc=$(objdump -T "$stage/usr/bin/gpuhook" "$stage/usr/bin/gpuhook-runtime" \
        | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
    sed -e "s/@VERSION@/$version/" -e "s/@RELEASE@/$release/" -e "s/@INSTALLED_SIZE@/$size/" \
        -e "s/@DEPENDS@/libc6 (>= $glibc), libgcc-s1/" "$repo/packaging/deb/control.in" > "$deb/control"
    install -m 0644 "$repo/packaging/deb/conffiles" "$deb/conffiles"
    for s in postinst prerm postrm; do
        script "$repo/packaging/deb/$s" > "$deb/$s"
        chmod 0755 "$deb/$s"
    done
    (cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$deb/md5sums"
    chmod 0644 "$deb/md5sums" "$deb/control"
    file=$out/gpuhook_${version}-${release}_amd64.deb
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$file" >/dev/null
    ;;
rpm)
    install -m 0644 "$repo/LICENSE" "$stage/usr/share/doc/gpuhook/LICENSE"
    install -m 0644 "$repo/CHANGELOG.md" "$stage/usr/share/doc/gpuhook/CHANGELOG.md"
    for s in post preun postun; do
        script "$repo/packaging/rpm/$s.sh" > "$work/$s.sh"
    done
    mkdir -p "$work/rpm"/{BUILD,RPMS,SPECS,SRPMS,SOURCES}
    sed -e "s/@VERSION@/$version/" -e "s/@RELEASE@/$release/" "$repo/packaging/rpm/gpuhook.spec.in" > "$work/gpuhook.spec"
    rpmbuild --quiet -bb "$work/gpuhook.spec" \
        --define "_topdir $work/rpm" --define "_stage $stage" --define "_scripts $work" \
        --define "_build_id_links none" >/dev/null
    file=$out/gpuhook-${version}-${release}.x86_64.rpm
    cp "$work/rpm/RPMS/x86_64/$(basename "$file")" "$file"
    ;;
*)
    echo "build.sh: unknown package kind $kind (deb or rpm)" >&2
    exit 1
    ;;
esac
echo "$file"
