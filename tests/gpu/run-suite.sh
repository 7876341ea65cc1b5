#!/usr/bin/env bash
# The real-GPU suite: gpuhook as runc's prestart hook on a machine with an NVIDIA driver.
#
# Usage (as root): tests/gpu/run-suite.sh CARRY_DIR [OUT_DIR]
#   CARRY_DIR/bin/{gpuhook,gpuhook-runtime,runc,busybox}  gpuhook's two binaries (release
#                                         build), runc, busybox-static
#   CARRY_DIR/lib/libseccomp.so.2         runc's one library, if the machine lacks it
# Builds only tests/gpu/vecadd.c, gpumem.c, capmem.c and the test tools (gcc); section 12a runs
# tests/gpu/workloads.sh (PyTorch, CUDA IPC, the hardened spec; WORKLOADS=0 skips it) and
# counts its checks. Prints one PASS/FAIL line per check, the timing figures, and "N passed,
# M failed"; exits non-zero when a check failed. Everything is also written to
# OUT_DIR/suite.log (workloads.sh's part also to OUT_DIR/workloads.log).
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
carry=$(realpath "${1:?usage: run-suite.sh CARRY_DIR [OUT_DIR]}")
out=${2:-/tmp/gpuhook-gpu-out}
mkdir -p "$out"
exec > >(tee "$out/suite.log") 2>&1

work=$(mktemp -d /tmp/gpuhook-gpu.XXXXXX)
hook=$carry/bin/gpuhook
export LD_LIBRARY_PATH=$carry/lib
runc() { "$carry/bin/runc" --root "$work/runc-state" "$@"; }
pass=0
fail=0
ok() { echo "PASS: $1"; pass=$((pass + 1)); }
ko() { echo "FAIL: $1${2:+ -- $2}"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
mounts() { awk '{ split($0, halves, " - "); print $5, halves[2] }' /proc/self/mountinfo | sort; }

echo "== host"
date -u +"date: %Y-%m-%dT%H:%M:%SZ"
driver=$(awk '/NVRM version/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+(\.[0-9]+)?$/) { print $i; exit } }' /proc/driver/nvidia/version)
echo "driver: $driver"
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,persistence_mode --format=csv,noheader
host_list=$(nvidia-smi -L)
uuid0=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0)
gpus=$(nvidia-smi -L | wc -l)
echo "cgroup: $(stat -fc %T /sys/fs/cgroup) | kernel: $(uname -r) | runc: $(runc --version | head -1)"
mounts_before=$(mounts)

echo "== setup"
gcc -O2 -o "$work/vecadd" "$repo/tests/gpu/vecadd.c" -ldl || { echo "cannot build vecadd"; exit 1; }
gcc -O2 -o "$work/gpumem" "$repo/tests/gpu/gpumem.c" -ldl || { echo "cannot build gpumem"; exit 1; }
gcc -O2 -o "$work/capmem" "$repo/tests/gpu/capmem.c" -ldl || { echo "cannot build capmem"; exit 1; }
gcc -O2 -o "$work/timed-exec" "$repo/tests/gpu/timed-exec.c" || { echo "cannot build timed-exec"; exit 1; }
tmpl=$work/rootfs
BUSYBOX=$carry/bin/busybox bash "$repo/tests/sim/make-rootfs.sh" "$tmpl" || exit 1
# The glibc pieces nvidia-smi, the driver libraries and vecadd need: the "image" part of the
# rootfs. Never the NVIDIA files themselves: those must come from gpuhook.
for f in "$(command -v nvidia-smi)" "$work/vecadd" $(ldconfig -p | awk '/libcuda.so.1 |libnvidia-ml.so.1 / && /x86-64/ { print $NF }'); do
    ldd "$f" | awk '$3 ~ /^\// { print $3 }'
done | sort -u | grep -v -e nvidia -e cuda | while read -r lib; do cp -L "$lib" "$tmpl/lib/x86_64-linux-gnu/"; done
cp "$work/vecadd" "$tmpl/bin/vecadd"
cp "$work/gpumem" "$tmpl/bin/gpumem"
cp "$work/capmem" "$tmpl/bin/capmem"
if [ -n "$(find "$tmpl" \( -name 'libcuda*' -o -name 'nvidia-smi' -o -name 'libnvidia*' \) -print -quit)" ]; then
    echo "rootfs template carries NVIDIA files"; exit 1
fi
printf '[log]\nfile = "%s"\nlevel = "debug"\n' "$work/hook.log" > "$work/gpuhook.toml"

# bundle NAME HOOK(yes|no) SCRIPT ENV...
bundle() {
    local name=$1 with_hook=$2 script=$3; shift 3
    local b=$work/b-$name
    rm -rf "$b"; mkdir -p "$b"; cp -a "$tmpl" "$b/rootfs"
    (cd "$b" && runc spec)
    python3 - "$b" "$hook" "$with_hook" "$work/gpuhook.toml" "$script" "$@" <<'PY'
import json, sys
b, hook, with_hook, config, script, *env = sys.argv[1:]
spec = json.load(open(f"{b}/config.json"))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["/bin/sh", "-c", script]
spec["process"]["env"] = ["PATH=/usr/bin:/bin"] + env
if with_hook in ("yes", "caps", "timed"):
    spec["hooks"] = {"prestart": [{"path": hook, "args": ["nvidia-container-runtime-hook", "prestart"],
                                   "env": [f"GPUHOOK_CONFIG={config}"]}]}
if with_hook == "timed":
    # The whole hook process, start-up included, timed by tests/gpu/timed-exec.c.
    timed = config.replace("gpuhook.toml", "timed-exec")
    spec["hooks"]["prestart"][0]["path"] = timed
    spec["hooks"]["prestart"][0]["args"] = ["timed-exec", config.replace("gpuhook.toml", "hook-process.txt"),
                                            hook, "nvidia-container-runtime-hook", "prestart"]
elif with_hook == "nodes":
    # No GPU asked for, but the device nodes bind-mounted in anyway: the cgroup must deny them.
    spec["mounts"] += [{"destination": d, "source": d, "type": "bind", "options": ["bind"]}
                       for d in ("/dev/nvidia0", "/dev/nvidiactl")]
if with_hook == "caps":
    # The memory-cap config, and the packaged hooks.d poststop entry.
    env = [f"GPUHOOK_CONFIG={config.replace('gpuhook.toml', 'caps.toml')}"]
    spec["hooks"]["prestart"][0]["env"] = env
    spec["hooks"]["poststop"] = [{"path": hook, "args": ["gpuhook", "poststop"], "env": env}]
json.dump(spec, open(f"{b}/config.json", "w"))
PY
}
# run NAME: runs the bundle, output in $work/NAME.{out,err}, returns runc's status.
run() {
    runc run --bundle "$work/b-$1" "gpu-$1-$$" < /dev/null > "$work/$1.out" 2> "$work/$1.err"
    local rc=$?
    runc delete --force "gpu-$1-$$" >/dev/null 2>&1
    rm -rf "$work/b-$1"
    return $rc
}
has() { grep -q -- "$2" "$work/$1"; }

echo "== 1. all GPUs, default capabilities: nvidia-smi -L as on the host"
bundle all yes 'nvidia-smi -L; echo "== vecadd"; vecadd; echo "== firmware"; ls /lib/firmware/nvidia/*/; echo "== mounts"; grep -e libcuda -e nvidia0 /proc/mounts' NVIDIA_VISIBLE_DEVICES=all
run all; rc=$?
cat "$work/all.out" "$work/all.err"
check "runc run with the hook succeeds" test "$rc" = 0
check "nvidia-smi -L inside equals the host's" test "$(sed -n '1,/^== vecadd/p' "$work/all.out" | grep '^GPU')" = "$host_list"
echo "== 2. CUDA driver-API kernel inside the container"
check "vector add of 1M floats is right" has all.out "vecadd: OK n=1048576 wrong=0"
check "libcuda used is the one gpuhook mounted" has all.out "libcuda=/usr/lib/x86_64-linux-gnu/libcuda.so.$driver"
check "libcuda is a read-only nosuid nodev mount" grep -q "libcuda.so.$driver .*ro,nosuid,nodev" "$work/all.out"
check "GSP firmware of this driver is there" has all.out "gsp_"

echo "== 3. selection and errors"
bundle uuid yes 'nvidia-smi -L' "NVIDIA_VISIBLE_DEVICES=$uuid0"
run uuid; check "by UUID: the GPU with that UUID" has uuid.out "$uuid0"
bundle idx yes 'nvidia-smi -L' NVIDIA_VISIBLE_DEVICES=0
run idx; check "by index 0: GPU 0" has idx.out "$uuid0"
bundle badidx yes 'true' NVIDIA_VISIBLE_DEVICES=7
run badidx; rc=$?; cat "$work/badidx.err"
check "index 7 fails the start" test "$rc" != 0
check "... with the clear message" has badidx.err "GPU 7 requested, this host has GPU"
bundle baduuid yes 'true' NVIDIA_VISIBLE_DEVICES=GPU-deadbeef-0000
run baduuid; rc=$?
check "unknown UUID fails the start with the clear message" test "$rc" != 0 -a -n "$(grep 'GPU GPU-deadbeef-0000 requested' "$work/baduuid.err")"
bundle none yes 'ls /usr/lib/x86_64-linux-gnu | grep -c "libcuda.so"; ls /dev | grep -c nvidia; nvidia-smi -L; echo "smi-exit=$?"' NVIDIA_VISIBLE_DEVICES=none
run none; cat "$work/none.out"
check "none: driver libraries present" test "$(sed -n 1p "$work/none.out")" -ge 1
check "none: no device node" test "$(sed -n 2p "$work/none.out")" = 0
check "none: nvidia-smi finds no GPU" test -z "$(grep '^GPU ' "$work/none.out")" -a -z "$(grep 'smi-exit=0' "$work/none.out")"
bundle utility yes 'nvidia-smi -L; ls /usr/lib/x86_64-linux-gnu | grep -c "libcuda" ; vecadd; echo "vecadd-exit=$?"' NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=utility
run utility; cat "$work/utility.out" "$work/utility.err"
check "utility: nvidia-smi works" has utility.out "$uuid0"
check "utility: no libcuda" test "$(grep -x '[0-9]*' "$work/utility.out" | head -1)" = 0
check "utility: a CUDA program cannot start" has utility.out "vecadd-exit=1"

echo "== 4. device cgroup v2 with runc's default rules"
check "the host is on cgroup v2" test "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs
bundle opens yes 'for d in nvidia0 nvidiactl nvidia-uvm; do (exec 3<>/dev/$d) && echo "open $d ok"; done' NVIDIA_VISIBLE_DEVICES=0
run opens; cat "$work/opens.out" "$work/opens.err"
for d in nvidia0 nvidiactl nvidia-uvm; do check "with the hook: /dev/$d opens" has opens.out "open $d ok"; done
bundle denied nodes 'for d in nvidia0 nvidiactl; do (exec 3<>/dev/$d) 2>&1 || echo "open $d denied"; done'
run denied; cat "$work/denied.out" "$work/denied.err"
check "no GPU asked: /dev/nvidia0 present but denied" has denied.out "open nvidia0 denied"
check "no GPU asked: /dev/nvidiactl present but denied" has denied.out "open nvidiactl denied"

echo "== 5. driver files found under /usr/local/nvidia with the default config"
bundle layout yes 'head -c 4 /usr/bin/nvidia-smi | od -An -c; ls /usr/lib/x86_64-linux-gnu | grep -c "\.so\.'"$driver"'$"' NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=all
run layout; cat "$work/layout.out" "$work/layout.err"
check "/usr/bin/nvidia-smi in the container is the ELF binary, not the host's wrapper script" grep -q "177   E   L   F" "$work/layout.out"
check "all-capability libraries found through the host ld cache (/usr/local/nvidia/lib64)" test "$(tail -1 "$work/layout.out")" -ge 10

echo "== 6. timing (20 starts each)"
# Each bundle's rootfs copy is written back (sync) before its start: otherwise its writeback
# competes with the hook's own file creations on this machine's ext4 /tmp (measured: 8 to 13 ms
# a start instead of ~4) and the figure is the harness's, not the hook's.
: > "$work/hook.log"
for i in $(seq 20); do
    for mode in timed no; do
        bundle t-$mode $mode 'true' NVIDIA_VISIBLE_DEVICES=all
        sync
        t0=$(date +%s%N); run t-$mode; t1=$(date +%s%N)
        echo $(( (t1 - t0) / 1000 )) >> "$work/runc-$mode.us"
    done
done
mv "$work/runc-timed.us" "$work/runc-yes.us"
stats() { sort -n | awk '{ a[NR] = $1 } END { printf "median %.1f ms, worst %.1f ms (n=%d)", a[int((NR + 1) / 2)] / s, a[NR] / s, NR }' s="$1"; }
hook_ms() { grep -o 'elapsed_ms=[0-9.]*' "$work/hook.log" | cut -d= -f2; }
echo "hook's own wall time:   $(hook_ms | stats 1)"
echo "hook process, exec to exit (timed-exec): $(cut -d' ' -f1 "$work/hook-process.txt" | stats 1000)"
echo "hook's peak RSS (KiB, its own VmHWM): $(grep -o ' max_rss_kib=[0-9]*' "$work/hook.log" | cut -d= -f2 | sort -n | awk '{ a[NR] = $1 } END { printf "median %d, worst %d (n=%d)", a[int((NR + 1) / 2)], a[NR], NR }')"
echo "ld cache updates: $(grep -o ' ldcache=[a-z-]*' "$work/hook.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
echo "runc run with gpuhook:  $(stats 1000 < "$work/runc-yes.us")"
echo "runc run without hook:  $(stats 1000 < "$work/runc-no.us")"
for req in "NVIDIA_REQUIRE_CUDA=cuda>=12.0" "NVIDIA_REQUIRE_ARCH=arch>=9.0"; do
    : > "$work/hook.log"
    for i in $(seq 5); do bundle req yes 'true' NVIDIA_VISIBLE_DEVICES=all "$req"; run req || ko "$req holds on this GPU" "$(cat "$work/req.err")"; done
    echo "hook with $req: $(hook_ms | stats 1)"
done
bundle arch yes 'true' NVIDIA_VISIBLE_DEVICES=all "NVIDIA_REQUIRE_ARCH=arch>=10.0"
run arch; rc=$?; cat "$work/arch.err"
check "arch requirement read from NVML fails the start" test "$rc" != 0 -a -n "$(grep 'arch>=10.0 does not hold' "$work/arch.err")"

echo "== 7. 20 containers in parallel"
for i in $(seq 20); do bundle par$i yes 'nvidia-smi -L' NVIDIA_VISIBLE_DEVICES=all; done
pids=()
for i in $(seq 20); do run par$i & pids+=($!); done
# Wait for these jobs by pid: a bare `wait` also waits for the tee of this script's output.
for pid in "${pids[@]}"; do wait "$pid"; done
seen=0
for i in $(seq 20); do grep -q "$uuid0" "$work/par$i.out" && seen=$((seen + 1)); done
check "all 20 parallel containers saw the GPU ($seen/20)" test "$seen" = 20

echo "== 8. runtime shim: GPU device rules in the spec survive a re-application of the cgroup"
# With the systemd cgroup driver, runc hands the spec's device rules to systemd (DeviceAllow=),
# and every `systemctl daemon-reload` makes systemd attach a device program built from them.
# This machine has no systemd (PID 1 below) and `runc update` skips devices on purpose, so
# tests/gpu/reapply-devices.c does what systemd does: it attaches (BPF_F_ALLOW_MULTI) a program
# allowing exactly the rules runc recorded from the spec. A GPU allowed only by the hook's own
# cgroup edit is lost then (the incumbent's "Failed to initialize NVML: Unknown Error"); one the
# shim wrote into the spec stays.
echo "PID 1 here: $(ps -p 1 -o comm= 2>/dev/null || echo unknown)"
gcc -O2 -o "$work/reapply-devices" "$repo/tests/gpu/reapply-devices.c" || ko "build reapply-devices.c"
printf '[log]\nfile = "%s"\nlevel = "debug"\n[runtime]\nruntimes = ["%s"]\n' "$work/hook.log" "$carry/bin/runc" > "$work/shim.toml"
probe='(exec 3<>/dev/nvidia0) 2>/dev/null && echo "open ok" || echo "open denied"; nvidia-smi -L 2>&1 | head -1'
reapply() { # reapply NAME: the probe before and after the systemd-style re-application
    local id="gpu-$1-$$" pid cg rules
    runc exec "$id" sh -c "$probe" > "$work/$1.before" 2>&1
    pid=$(runc state "$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
    cg=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
    mapfile -t rules < <(python3 - "$work/runc-state/$id/state.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["config"]["cgroups"]["devices"]:
    if r["allow"]:
        print(chr(r["type"]), r["major"], r["minor"], r["permissions"])
PY
)
    "$work/reapply-devices" "$cg" "${rules[@]}"
    runc exec "$id" sh -c "$probe" > "$work/$1.after" 2>&1
    echo "$1 before: $(tr '\n' ' ' < "$work/$1.before")"; echo "$1 after:  $(tr '\n' ' ' < "$work/$1.after")"
    runc delete --force "$id" >/dev/null 2>&1
}
bundle hookonly yes 'sleep 60' NVIDIA_VISIBLE_DEVICES=0
runc run -d --bundle "$work/b-hookonly" "gpu-hookonly-$$" < /dev/null > /dev/null 2>&1
reapply hookonly
check "hook only (what docker --gpus gets): the GPU opens before the re-application" has hookonly.before "open ok"
check "hook only: the re-application takes it away (reproduces the daemon-reload failure)" has hookonly.after "open denied"
bundle shim no 'sleep 60' NVIDIA_VISIBLE_DEVICES=0
GPUHOOK_CONFIG=$work/shim.toml "$carry/bin/gpuhook-runtime" --root "$work/runc-state" run -d --bundle "$work/b-shim" "gpu-shim-$$" < /dev/null > "$work/shim.err" 2>&1 || cat "$work/shim.err"
check "the shim wrote /dev/nvidia0 into linux.devices and linux.resources.devices" python3 -c '
import json, sys, os
spec = json.load(open(sys.argv[1]))
node = os.stat("/dev/nvidia0")
declared = [d for d in spec["linux"]["devices"] if d["path"] == "/dev/nvidia0"]
allowed = [r for r in spec["linux"]["resources"]["devices"] if r.get("allow") and r.get("major") == os.major(node.st_rdev) and r.get("minor") == os.minor(node.st_rdev)]
sys.exit(0 if declared and allowed else 1)' "$work/b-shim/config.json"
reapply shim
check "through the shim: /dev/nvidia0 opens before the re-application" has shim.before "open ok"
check "through the shim: /dev/nvidia0 still opens after it" has shim.after "open ok"
check "through the shim: nvidia-smi still sees the GPU after it" has shim.after "$uuid0"
rm -rf "$work/b-hookonly" "$work/b-shim"

echo "== 8b. a second hook run for one container adds nothing to its eBPF device program"
gcc -O2 -o "$work/device-programs" "$repo/tests/gpu/device-programs.c" || ko "build device-programs.c"
programs() { # programs NAME: the device programs of the running container NAME
    local id="gpu-$1-$$" pid
    pid=$(runc state "$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
    "$work/device-programs" "/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")"
    runc delete --force "$id" >/dev/null 2>&1
}
bundle once yes 'sleep 60' NVIDIA_VISIBLE_DEVICES=0
runc run -d --bundle "$work/b-once" "gpu-once-$$" < /dev/null > /dev/null 2>&1
once=$(programs once)
bundle twice yes 'sleep 60' NVIDIA_VISIBLE_DEVICES=0
python3 - "$work/b-twice/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["hooks"]["prestart"] = spec["hooks"]["prestart"] * 2
json.dump(spec, open(sys.argv[1], "w"))
PY
runc run -d --bundle "$work/b-twice" "gpu-twice-$$" < /dev/null > /dev/null 2>&1
twice=$(programs twice)
echo "one hook run: $once | two hook runs: $twice"
check "two hook runs leave the same device programs as one" test -n "$once" -a "$once" = "$twice"

echo "== 9. CDI: a spec generated here, applied by the runtime shim, gives what the hook gives"
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" cdi generate --output "$work/cdi/nvidia.json"
check "cdi list offers GPU 0 and all" test "$(GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" cdi list --spec-dir "$work/cdi" | tr '\n' ' ')" = "nvidia.com/gpu=0 nvidia.com/gpu=all "
printf '[log]\nfile = "%s"\nlevel = "debug"\n[runtime]\nruntimes = ["%s"]\n[cdi]\nspec-dirs = ["%s"]\n' "$work/hook.log" "$carry/bin/runc" "$work/cdi" > "$work/cdi.toml"
list='echo "== dev"; ls /dev | grep nvidia; echo "== lib"; ls /usr/lib/x86_64-linux-gnu; echo "== bin"; ls /usr/bin; echo "== firmware"; ls -R /lib/firmware; echo "== gpus"; ls /proc/driver/nvidia/gpus; echo "== ldcache"; tr -c "[:print:]" "\n" < /etc/ld.so.cache | grep -e nvidia -e cuda | sort -u; echo "== smi"; nvidia-smi -L'
bundle cdi no "$list; echo '== vecadd'; vecadd" NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0
GPUHOOK_CONFIG=$work/cdi.toml "$carry/bin/gpuhook-runtime" --root "$work/runc-state" run --bundle "$work/b-cdi" "gpu-cdi-$$" < /dev/null > "$work/cdi.out" 2> "$work/cdi.err"; rc=$?
runc delete --force "gpu-cdi-$$" > /dev/null 2>&1
cat "$work/cdi.err"
check "runc run through the shim in CDI mode succeeds" test "$rc" = 0
check "CDI: nvidia-smi -L inside equals the host's" test "$(sed -n '/^== smi/,/^== vecadd/p' "$work/cdi.out" | grep '^GPU')" = "$host_list"
check "CDI: vector add of 1M floats is right" has cdi.out "vecadd: OK n=1048576 wrong=0"
bundle cdihook yes "$list" NVIDIA_VISIBLE_DEVICES=0 NVIDIA_DRIVER_CAPABILITIES=all
run cdihook
sed '/^== vecadd/,$d' "$work/cdi.out" > "$work/cdi.list"
check "CDI and the hook give the same nodes, libraries, utilities, firmware, ld cache and GPUs" diff "$work/cdihook.out" "$work/cdi.list"
rm -rf "$work/b-cdi"

echo "== 10. graphics files, info and list against nvidia-smi, doctor"
"$hook" info --json > "$work/info.json" 2> "$work/info.err"; cat "$work/info.err"
nvidia-smi --query-gpu=index,uuid,pci.bus_id --format=csv,noheader > "$work/smi.csv"
check "info lists each GPU with nvidia-smi's index, UUID and bus id" python3 - "$work/info.json" "$work/smi.csv" "$driver" <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
smi = [[f.strip() for f in line.split(",")] for line in open(sys.argv[2]) if line.strip()]
ours = [[str(g["index"]), g["uuid"], g["bus_id"].lower()] for g in info["gpus"]]
# nvidia-smi writes the PCI domain with 8 digits (00000000:00:06.0), the kernel with 4.
theirs = [[i, u, b.lower()[-12:]] for i, u, b in smi]
print("info:", ours, "nvidia-smi:", theirs, "driver:", info["driver_version"], "cuda:", info["cuda_version"], "arch:", [g["arch"] for g in info["gpus"]])
sys.exit(0 if ours == theirs and info["driver_version"] == sys.argv[3] else 1)
PY
# Brands by the toolkit's names: nvidia-smi's "Product Brand" without spaces, lower-cased
# (NVIDIA -> nvidia, Quadro RTX -> quadrortx).
smi_brand=$(nvidia-smi -q -i 0 | awk -F: '/Product Brand/ { gsub(/ /, "", $2); print tolower($2); exit }')
our_brand=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gpus"][0]["brand"])' "$work/info.json")
echo "brand: nvidia-smi $smi_brand, gpuhook info $our_brand"
check "info names GPU 0's brand as the toolkit does (nvidia-smi's Product Brand)" test -n "$smi_brand" -a "$our_brand" = "$smi_brand"
bundle brand yes 'nvidia-smi -L' NVIDIA_VISIBLE_DEVICES=0 "NVIDIA_REQUIRE_BRAND=brand=$our_brand"
run brand; check "NVIDIA_REQUIRE_BRAND=brand=$our_brand starts a container on GPU 0" has brand.out "$uuid0"
bundle nobrand yes 'true' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_REQUIRE_BRAND=brand=nosuchbrand
run nobrand; rc=$?; cat "$work/nobrand.err"
check "... and brand=nosuchbrand is refused naming the host's brand" test "$rc" != 0 -a -n "$(grep -F "brand $our_brand" "$work/nobrand.err")"
# A legacy CUDA image (CUDA_VERSION only): every GPU, every capability, as the incumbent.
bundle legacy yes 'nvidia-smi -L; vecadd; ls /usr/lib/x86_64-linux-gnu' CUDA_VERSION=12.0.0
run legacy; rc=$?; cat "$work/legacy.err"
check "legacy image (CUDA_VERSION only) starts, sees every GPU and runs the kernel" test "$rc" = 0 -a "$(grep -c '^GPU' "$work/legacy.out")" = "$gpus" -a -n "$(grep 'vecadd: OK' "$work/legacy.out")"
if ldconfig -p | grep -q "libnvidia-glcore.so.$driver"; then
    check "... and gets graphics libraries too (all capabilities)" has legacy.out "libnvidia-glcore.so.$driver"
fi
check "hook log lines start with an RFC 3339 UTC timestamp" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z gpuhook\[' "$work/hook.log"
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" list --devices 0 --capabilities graphics,video,utility,compute --json > "$work/list.json"
gfx_files=$(python3 -c 'import json,sys; print(" ".join(m["container_path"] for m in json.load(open(sys.argv[1]))["mounts"] if "/share/" in m["container_path"] or "/gbm/" in m["container_path"]))' "$work/list.json")
echo "graphics files listed: $gfx_files"
for f in /usr/share/vulkan/icd.d/nvidia_icd.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json; do
    if [ -f "$f" ]; then check "list names $f (present on this host)" grep -q "$f" "$work/list.json"; fi
done
bundle gfx yes "for f in $gfx_files; do md5sum \$f; done; ls /usr/lib/x86_64-linux-gnu | grep -c -e libGLX_nvidia -e libEGL_nvidia -e libnvcuvid" NVIDIA_VISIBLE_DEVICES=0 NVIDIA_DRIVER_CAPABILITIES=graphics,video,utility,compute
run gfx; rc=$?; cat "$work/gfx.out" "$work/gfx.err"
check "graphics,video,utility,compute container starts" test "$rc" = 0
for f in $gfx_files; do
    host=$(python3 -c 'import json,sys; print(next(m["host_path"] for m in json.load(open(sys.argv[1]))["mounts"] if m["container_path"] == sys.argv[2]))' "$work/list.json" "$f")
    check "$f in the container is the host's $host" grep -q "$(md5sum < "$host" | cut -d' ' -f1)  $f" "$work/gfx.out"
done
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" doctor > "$work/doctor.out" 2>&1; rc=$?
cat "$work/doctor.out"
check "doctor finds nothing broken on this node" test "$rc" = 0

echo "== 11. gpuhook ps and metrics: GPU memory per container"
# Three runc containers through the hook, each holding a known amount on GPU 0 (gpumem: a
# context alone, + 1 GiB, + 2 GiB), and one host process holding a context. The context-only
# container measures the CUDA context's own memory; the others must show theirs plus it.
"$work/gpumem" 0 > "$work/hostmem.out" 2>&1 &
hostmem=$!
for case in ctx:0 1g:1024 2g:2048; do
    bundle "mem${case%%:*}" yes "exec gpumem ${case##*:}" NVIDIA_VISIBLE_DEVICES=0
    runc run -d --bundle "$work/b-mem${case%%:*}" "gpu-mem${case%%:*}-$$" < /dev/null > "$work/mem${case%%:*}.out" 2>&1
done
for _ in $(seq 120); do
    [ "$(cat "$work"/memctx.out "$work"/mem1g.out "$work"/mem2g.out "$work/hostmem.out" 2>/dev/null | grep -c 'gpumem: holding')" = 4 ] && break
    sleep 0.5
done
cat "$work"/mem*.out "$work/hostmem.out"
t0=$(date +%s%N)
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" ps --json --runc-root "$work/runc-state" > "$work/ps.json" 2> "$work/ps.err"; rc=$?
t1=$(date +%s%N)
cat "$work/ps.err"
echo "gpuhook ps took $(( (t1 - t0) / 1000000 )) ms (NVML initialisation included)"
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" ps --runc-root "$work/runc-state"
check "gpuhook ps --json succeeds" test "$rc" = 0
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits > "$work/apps.csv"
check "each container is listed with its amount plus the measured CUDA context overhead" python3 - "$work/ps.json" "$work/runc-state" "$$" "$hostmem" "$work/apps.csv" <<'PY'
import json, sys
ps, state_root, me, hostmem, apps = sys.argv[1:]
MIB = 1 << 20
usage = json.load(open(ps))["usage"]
def row(cid):
    rows = [u for u in usage if u["owner"] == "container" and u["container"]["id"] == cid]
    return rows[0] if len(rows) == 1 else None
pid = lambda name: json.load(open(f"{state_root}/gpu-{name}-{me}/state.json"))["init_process_pid"]
rows = {n: row(f"gpu-{n}-{me}") for n in ("memctx", "mem1g", "mem2g")}
print("rows:", {n: (r["memory_used_bytes"] / MIB, [p["pid"] for p in r["processes"]]) if r else None for n, r in rows.items()})
ok = all(rows.values())
if ok:
    overhead = rows["memctx"]["memory_used_bytes"] / MIB
    print(f"CUDA context overhead (a container holding only a context): {overhead:.0f} MiB")
    for n, want in (("mem1g", 1024), ("mem2g", 2048)):
        got = rows[n]["memory_used_bytes"] / MIB
        print(f"{n}: {got:.0f} MiB = {want} MiB + {got - want:.0f} MiB (context overhead measured: {overhead:.0f} MiB)")
        ok &= abs(got - want - overhead) <= 32
    ok &= all([p["pid"] for p in rows[n]["processes"]] == [pid(n)] for n in rows)
    ok &= all(r["gpu"]["index"] == 0 for r in rows.values())
host = [u for u in usage if u["owner"] == "host" and any(p["pid"] == int(hostmem) for p in u["processes"])]
print("host process row:", bool(host))
ok &= bool(host)
smi = {int(p): int(m) for p, m in (l.split(",") for l in open(apps) if l.strip())}
ours = {p["pid"]: p["memory_used_bytes"] / MIB for u in usage for p in u["processes"] if p["memory_used_bytes"] is not None}
print("nvidia-smi --query-compute-apps (MiB):", smi, "gpuhook ps (MiB):", {k: round(v) for k, v in ours.items()})
ok &= all(abs(ours.get(p, -1e9) - m) <= 1 for p, m in smi.items())
sys.exit(0 if ok else 1)
PY
GPUHOOK_CONFIG=$work/gpuhook.toml "$hook" metrics --runc-root "$work/runc-state" > "$work/metrics.txt" 2>&1
grep -e "gpu-mem1g-$$" -e '^gpuhook_gpu_memory' "$work/metrics.txt"
check "metrics give the 1 GiB container the bytes ps gives it" python3 - "$work/ps.json" "$work/metrics.txt" "gpu-mem1g-$$" <<'PY'
import json, sys
ps, metrics, cid = sys.argv[1:]
want = [u["memory_used_bytes"] for u in json.load(open(ps))["usage"] if u["owner"] == "container" and u["container"]["id"] == cid]
got = [float(l.rsplit(" ", 1)[1]) for l in open(metrics) if l.startswith("gpuhook_container_gpu_memory_used_bytes{") and f'container_id="{cid}"' in l]
print("ps:", want, "metrics:", got)
sys.exit(0 if want and got == [float(w) for w in want] else 1)
PY
for name in memctx mem1g mem2g; do runc delete --force "gpu-$name-$$" > /dev/null 2>&1; rm -rf "$work/b-$name"; done
kill "$hostmem"; wait "$hostmem" 2>/dev/null

echo "== 12. GPU memory caps and compute shares through gpuhook's MPS daemons"
# Compute mode Default (never changed here): the caps hold for processes that use the pipe
# directory gpuhook mounts, which CUDA does by itself. The capped bundles carry the packaged
# hooks.d poststop entry.
printf '[log]\nfile = "%s"\nlevel = "debug"\n[memory]\nmps-root = "%s"\n' "$work/hook.log" "$work/mps" > "$work/caps.toml"
"$work/capmem" > "$work/capmem-host.out" 2>&1; cat "$work/capmem-host.out"
host_sms=$(sed -n 's/.* sms=\([0-9]*\).*/\1/p' "$work/capmem-host.out")
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$work/$1.out"; }
refused() { test "$(field "$1" alloc3g | cut -c1-7)" = refused; }
bundle cap2g caps 'capmem; echo "nvidia-smi inside: $(nvidia-smi --query-gpu=memory.total,memory.used --format=csv,noheader)"' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_GPU_MEMORY_LIMIT=2G
run cap2g; cat "$work/cap2g.out" "$work/cap2g.err"
check "2G cap: 1 GiB allocates" test "$(field cap2g alloc1g)" = ok
check "2G cap: 3 GiB is refused" refused cap2g
check "2G cap: cuMemGetInfo reports at most 2048 MiB free" test "$(field cap2g free)" -le 2048
bundle capraise caps 'capmem' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_GPU_MEMORY_LIMIT=2G CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=8G
run capraise; cat "$work/capraise.out" "$work/capraise.err"
check "its own CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=8G does not raise a 2G cap" refused capraise
for c in two:2G four:4G; do
    bundle "cap${c%%:*}" caps 'capmem' NVIDIA_VISIBLE_DEVICES=0 "NVIDIA_GPU_MEMORY_LIMIT=${c##*:}" HOLD=1
    runc run -d --bundle "$work/b-cap${c%%:*}" "gpu-cap${c%%:*}-$$" < /dev/null > "$work/cap${c%%:*}.out" 2>&1
done
for _ in $(seq 120); do
    [ "$(cat "$work/captwo.out" "$work/capfour.out" | grep -c 'capmem:')" = 2 ] && break
    sleep 0.5
done
cat "$work/captwo.out" "$work/capfour.out"
check "two containers at once: the 2G one is refused 3 GiB" refused captwo
check "two containers at once: the 4G one allocates 3 GiB" test "$(field capfour alloc3g)" = ok
check "two caps at once, two MPS control daemons" test "$(ls "$work/mps/pools" | wc -l)" = 2
GPUHOOK_CONFIG=$work/caps.toml "$hook" ps --runc-root "$work/runc-state" | grep -e CAP -e "gpu-cap"
for n in two four; do runc delete --force "gpu-cap$n-$$" > /dev/null 2>&1; rm -rf "$work/b-cap$n"; done
bundle capshare caps 'capmem' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_GPU_COMPUTE_LIMIT=25
run capshare; cat "$work/capshare.out" "$work/capshare.err"
echo "SMs: the GPU's $host_sms, a container with a 25 % compute share sees $(field capshare sms)"
check "a 25 % compute share shows fewer SMs than the GPU has" test -n "$(field capshare sms)" -a "$(field capshare sms)" -lt "$host_sms"
for i in $(seq 20); do
    bundle capcycle caps 'capmem' NVIDIA_VISIBLE_DEVICES=0 NVIDIA_GPU_MEMORY_LIMIT=2G
    run capcycle || ko "capped cycle $i" "$(cat "$work/capcycle.err")"
done
for _ in $(seq 100); do [ -z "$(pgrep -f nvidia-cuda-mps)" ] && break; sleep 0.1; done
check "after 20 capped cycles no MPS process is left" test -z "$(pgrep -fa nvidia-cuda-mps)"
# find, not ls: ls of two directories prints their names even when both are empty.
left=$(find "$work/mps/pools" "$work/mps/containers" -mindepth 1 2> /dev/null)
check "after 20 capped cycles no pool or registration is left" test -z "$left"
[ -z "$left" ] || echo "left: $left"
GPUHOOK_CONFIG=$work/caps.toml "$hook" doctor 2>&1 | grep -i "compute mode"


echo "== 12a. real workloads: PyTorch, CUDA IPC, the hardened recipe (tests/gpu/workloads.sh; WORKLOADS=0 skips)"
if [ "${WORKLOADS:-1}" != 0 ]; then
    bash "$repo/tests/gpu/workloads.sh" "$carry" "$out" | tee "$work/workloads.out"
    counts=$(sed -n 's/^workloads: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$work/workloads.out")
    if [ -n "$counts" ]; then
        pass=$((pass + ${counts% *})); fail=$((fail + ${counts#* }))
    else
        ko "workloads.sh ran to its end"
    fi
fi

echo "== 12b. a user-namespaced container (ids 0-65535 are host ids 100000..): the vector add"
# What Docker's userns-remap and Podman's --userns=auto make: the container's root is host uid
# 100000, its rootfs belongs to that uid, its /proc is mounted in its own user namespace.
bundle userns yes 'cat /proc/self/uid_map; nvidia-smi -L; echo "== vecadd"; vecadd; echo "== gpus"; ls /proc/driver/nvidia/gpus; echo "== mounts"; grep -e " /proc/driver/nvidia " -e " /dev/nvidia0 " /proc/mounts' NVIDIA_VISIBLE_DEVICES=0
python3 - "$work/b-userns/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["linux"]["namespaces"].append({"type": "user"})
spec["linux"]["uidMappings"] = spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
json.dump(spec, open(sys.argv[1], "w"))
PY
chown -R -h 100000:100000 "$work/b-userns/rootfs"
# mktemp made the work directory 0700: the container's root (host uid 100000) must be able to
# reach its rootfs through it, as under /var/lib/docker/<uid>.<gid>.
chmod 0711 "$work"
run userns; rc=$?
cat "$work/userns.out" "$work/userns.err"
check "user namespace: runc run with the hook succeeds" test "$rc" = 0
check "user namespace: the container's root is host uid 100000" grep -Eq '^ *0 +100000 +65536$' "$work/userns.out"
check "user namespace: nvidia-smi -L shows GPU 0" has userns.out "$uuid0"
check "user namespace: vector add of 1M floats is right" has userns.out "vecadd: OK n=1048576 wrong=0"
check "user namespace: /proc/driver/nvidia/gpus holds GPU 0 only" test "$(sed -n '/^== gpus/,/^== mounts/p' "$work/userns.out" | grep -c '^[0-9a-f]\{4\}:')" = 1
check "user namespace: /proc/driver/nvidia is a read-only tmpfs" grep -q ' /proc/driver/nvidia tmpfs ro,' "$work/userns.out"


echo "== 13. the host is left clean (after the parallel starts of 7 and everything else)"
sleep 1
check "no container left in runc" test -z "$(runc list -q)"
check "no gpuhook or runc process left" test -z "$(pgrep -f "$carry/bin/(gpuhook|runc)")"
check "the host mount table is as before the suite" test "$(mounts)" = "$mounts_before"

echo "== hook log (last lines)"
tail -3 "$work/hook.log"
rm -rf "$work"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
