# Shared by the deb and rpm maintainer scripts (pasted into each by packaging/build.sh).

# Opt-in registration with Docker: an environment switch, not a debconf question, so that
# unattended installs (cloud-init, Ansible) can say yes and interactive ones see the next step.
# `docker run --gpus` works without it (through nvidia-container-runtime-hook); the `gpuhook`
# runtime is for `--runtime=gpuhook` and CDI. dockerd is never restarted from here.
gpuhook_register() {
    if [ "${GPUHOOK_CONFIGURE_DOCKER:-0}" = "1" ] && command -v dockerd >/dev/null 2>&1; then
        gpuhook configure --runtime docker || echo "gpuhook: could not register with Docker; run 'gpuhook configure --runtime docker' by hand" >&2
    elif [ "$1" = "first" ]; then
        echo "gpuhook: 'docker run --gpus' works now. For '--runtime=gpuhook' or CDI, run:"
        echo "    gpuhook configure --runtime docker && systemctl restart docker"
        echo "(or set GPUHOOK_CONFIGURE_DOCKER=1 when installing)"
    fi
}

# On removal, take out the runtime entries gpuhook configure wrote (only those naming the
# packaged gpuhook-runtime), so no engine is left pointing at a missing binary.
gpuhook_unregister() {
    for entry in docker:/etc/docker/daemon.json containerd:/etc/containerd/config.toml \
                 crio:/etc/crio/crio.conf.d/99-gpuhook.conf; do
        engine=${entry%%:*}
        file=${entry#*:}
        if [ -f "$file" ] && grep -q /usr/bin/gpuhook-runtime "$file"; then
            gpuhook configure --runtime "$engine" --config "$file" --remove \
                || echo "gpuhook: could not remove the gpuhook runtime from $file; remove it by hand" >&2
        fi
    done
}

# On purge: the log and the backups gpuhook configure made.
gpuhook_purge() {
    rm -f /var/log/gpuhook.log /var/log/gpuhook.log.*
    rm -f /etc/docker/daemon.json.gpuhook-backup /etc/containerd/config.toml.gpuhook-backup \
          /etc/crio/crio.conf.d/99-gpuhook.conf.gpuhook-backup
    rmdir /etc/gpuhook 2>/dev/null || true
}
