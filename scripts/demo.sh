#!/usr/bin/env bash
# Runs one GPU container through gpuhook with real runc and shows what it sees.
# Real driver when one is loaded (/proc/driver/nvidia/version), else a simulated driver tree.
# Needs root, runc, busybox-static and gcc (`apt-get install runc busybox-static gcc`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
hook=${GPUHOOK_BIN:-$repo/target/debug/gpuhook}
runc=${RUNC:-runc}

[ "$(id -u)" = 0 ] || { echo "demo: needs root (runc and the hook mount inside containers)" >&2; exit 1; }
command -v "$runc" >/dev/null || { echo "demo: runc not found: apt-get install runc" >&2; exit 1; }
[ -x "$hook" ] || { echo "demo: $hook not built: run 'cargo build --bins'" >&2; exit 1; }

work=$(mktemp -d /tmp/gpuhook-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle"

if [ -r /proc/driver/nvidia/version ]; then
    echo "demo: real NVIDIA driver: $(head -1 /proc/driver/nvidia/version | tr -s ' ')"
    : > "$bundle/gpuhook.toml"   # defaults: driver root /, /dev, /proc/driver/nvidia
else
    echo "demo: no NVIDIA driver loaded: using a simulated driver tree with 2 GPUs"
    bash "$repo/tests/sim/make-driver.sh" "$work/sim" 2
    cat > "$bundle/gpuhook.toml" <<TOML
[driver]
root = "$work/sim/driver"
dev-root = "$work/sim/dev"
proc-driver-root = "$work/sim/proc/driver/nvidia"
TOML
fi
printf '[log]\nfile = "%s"\n' "$work/gpuhook.log" >> "$bundle/gpuhook.toml"

bash "$repo/tests/sim/make-rootfs.sh" "$bundle/rootfs"
(cd "$bundle" && "$runc" spec)
python3 - "$bundle" "$hook" "${NVIDIA_VISIBLE_DEVICES:-all}" <<'PY'
import json, sys
bundle, hook, visible = sys.argv[1:]
path = f"{bundle}/config.json"
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["env"] = ["PATH=/usr/bin:/bin", f"NVIDIA_VISIBLE_DEVICES={visible}"]
spec["process"]["args"] = ["/bin/sh", "-c",
    "echo '--- nvidia-smi -L'; nvidia-smi -L; echo '--- /dev'; ls /dev | grep nvidia; "
    "echo '--- /proc/driver/nvidia/gpus'; ls /proc/driver/nvidia/gpus; "
    "echo '--- driver libraries'; ls /usr/lib/x86_64-linux-gnu | grep -e cuda -e nvidia-ml"]
spec["hooks"] = {"prestart": [{"path": hook, "args": ["gpuhook", "prestart"],
                               "env": [f"GPUHOOK_CONFIG={bundle}/gpuhook.toml"]}]}
json.dump(spec, open(path, "w"), indent=2)
PY
echo "demo: runc run with NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES:-all}"
"$runc" --root "$work/runc" run --bundle "$bundle" "gpuhook-demo-$$" </dev/null
echo "--- hook log"; cat "$work/gpuhook.log"
