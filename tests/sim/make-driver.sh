#!/usr/bin/env bash
# make-driver.sh OUT NGPUS
#
# Builds a simulated NVIDIA driver 580.159.04 under OUT (wiped first):
#   OUT/driver/  driver root: libraries + ld cache, binaries, firmware, persistenced and
#                fabric manager sockets, MPS pipe dir, Vulkan/EGL/GBM files, X modules
#   OUT/dev/     device nodes (real majors, no kernel driver behind them), IMEX channels 0-1,
#                dri/card<i+1> and dri/renderD<128+i> of GPU i (and a foreign dri/card0)
#   OUT/sys/bus/pci/devices/<bus id>/drm/  each GPU's DRM node names, as sysfs lists them
#   OUT/proc/driver/nvidia/  version, params, registry, gpus/<bus id>/information
#   OUT/gpu-processes        the simulated NVML's process table (absent: no GPU process;
#                            see tests/sim/README.md and sim_nvml_procs.c)
#   OUT/compute-mode         the GPUs' compute mode NVML reports (absent: 0, Default)
#   OUT/mps-hang             when present, `nvidia-cuda-mps-control -d` never returns
#   OUT/nvml-memory-limits   NVML memory limits set (SIM_NVML_MEMORY_LIMITS=1 only)
# Env: SIM_CUDA_VERSION (default 13000) is what libcuda's cuDriverGetVersion reports.
#      SIM_BRAND (default 2, NVML_BRAND_TESLA) is the nvmlBrandType_t value NVML reports.
#      SIM_NVML_MEMORY_LIMITS=1 gives the NVML nvmlDeviceSetMemoryLimits_v1 (driver r615+).
#      SIM_MIG=1 puts GPU 0 in MIG mode with 2 MIG devices (GPU instances 1 and 2, compute
#      instance 0 each): OUT/proc/driver/nvidia/capabilities/ and OUT/dev/nvidia-caps/.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 OUT NGPUS" >&2
    exit 2
fi
case "$2" in
    '' | *[!0-9]*) echo "$0: NGPUS must be a number" >&2; exit 2 ;;
esac
NGPUS=$((10#$2))
if [ "$NGPUS" -gt 64 ]; then
    echo "$0: at most 64 GPUs" >&2
    exit 2
fi

VERSION=580.159.04
CUDA_VERSION=${SIM_CUDA_VERSION:-13000}
case "$CUDA_VERSION" in
    '' | *[!0-9]*) echo "$0: SIM_CUDA_VERSION must be a number" >&2; exit 2 ;;
esac
SIM_BRAND=${SIM_BRAND:-2}
case "$SIM_BRAND" in
    '' | *[!0-9]*) echo "$0: SIM_BRAND must be a number (an nvmlBrandType_t value)" >&2; exit 2 ;;
esac
SIM_MIG=${SIM_MIG:-0}
SIM_NVML_MEMORY_LIMITS=${SIM_NVML_MEMORY_LIMITS:-0}
case "$SIM_NVML_MEMORY_LIMITS" in
    0 | 1) ;;
    *) echo "$0: SIM_NVML_MEMORY_LIMITS must be 0 or 1" >&2; exit 2 ;;
esac
case "$SIM_MIG" in
    0) ;;
    1) if [ "$NGPUS" -lt 1 ]; then echo "$0: SIM_MIG=1 needs a GPU" >&2; exit 2; fi ;;
    *) echo "$0: SIM_MIG must be 0 or 1" >&2; exit 2 ;;
esac
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

rm -rf -- "$1"
mkdir -p -- "$1"
OUT=$(cd -- "$1" && pwd -P)
ROOT=$OUT/driver
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
BINDIR=$ROOT/usr/bin
BUILD=$OUT/.build
mkdir -p "$LIBDIR" "$BINDIR" "$ROOT/etc" "$BUILD" "$OUT/dev" "$OUT/proc/driver/nvidia/gpus"

# A C string literal for -D.
cstr() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

CC=(gcc -O0 -Wall -Wextra)
DEFS=(
    "-DSIM_DRIVER_VERSION=$(cstr "$VERSION")"
    "-DSIM_CUDA_VERSION=$CUDA_VERSION"
    "-DSIM_PROC=$(cstr "$OUT/proc/driver/nvidia/gpus")"
    "-DSIM_DEV=$(cstr "$OUT/dev")"
    "-DSIM_CAPS=$(cstr "$OUT/proc/driver/nvidia/capabilities")"
    "-DSIM_PROCESSES=$(cstr "$OUT/gpu-processes")"
    "-DSIM_BRAND=$SIM_BRAND"
    "-DSIM_NVML_INIT_LOG=$(cstr "$OUT/nvml-inits.log")"
    "-DSIM_COMPUTE_MODE=$(cstr "$OUT/compute-mode")"
    "-DSIM_MPS_HANG=$(cstr "$OUT/mps-hang")"
)
if [ "$SIM_NVML_MEMORY_LIMITS" = 1 ]; then
    DEFS+=("-DSIM_MEMORY_LIMITS=$(cstr "$OUT/nvml-memory-limits")")
fi

# ---- libraries -------------------------------------------------------------
"${CC[@]}" "${DEFS[@]}" -fPIC -c "$SRC/sim_stub.c" -o "$BUILD/stub.o"
"${CC[@]}" "${DEFS[@]}" -fPIC -c "$SRC/sim_cuda.c" -o "$BUILD/cuda.o"
"${CC[@]}" "${DEFS[@]}" -fPIC -c "$SRC/sim_nvml.c" -o "$BUILD/nvml-devices.o"
"${CC[@]}" "${DEFS[@]}" -fPIC -c "$SRC/sim_nvml_procs.c" -o "$BUILD/nvml-procs.o"
"${CC[@]}" "${DEFS[@]}" -fPIC -c "$SRC/sim_nvml_limits.c" -o "$BUILD/nvml-limits.o"
# One object for the one library: devices and MIG, processes, memory and utilisation, then
# compute mode and memory limits.
ld -r -o "$BUILD/nvml.o" "$BUILD/nvml-devices.o" "$BUILD/nvml-procs.o" "$BUILD/nvml-limits.o"

# lib FILE SONAME OBJECT [DEVLINK]: FILE with SONAME, soname link, dev link.
lib() {
    local file=$1 soname=$2 obj=$3 dev=${4:-}
    gcc -shared -Wl,-soname,"$soname" -o "$LIBDIR/$file" "$obj"
    ln -sfn "$file" "$LIBDIR/$soname"
    if [ -n "$dev" ]; then
        ln -sfn "$soname" "$LIBDIR/$dev"
    fi
}

# name:soname-suffix
LIBS=(
    # utility
    libnvidia-ml.so:1 libnvidia-cfg.so:1 libnvidia-nscq.so:1
    # compute
    libcuda.so:1 libcudadebugger.so:1 libnvidia-opencl.so:1 libnvidia-gpucomp.so:1
    libnvidia-ptxjitcompiler.so:1 libnvidia-allocator.so:1 libnvidia-pkcs11.so:1
    libnvidia-pkcs11-openssl3.so:1 libnvidia-nvvm.so:1
    # video
    libvdpau_nvidia.so:1 libnvidia-encode.so:1 libnvidia-opticalflow.so:1 libnvcuvid.so:1
    # graphics
    libnvidia-eglcore.so:1 libnvidia-glcore.so:1 libnvidia-tls.so:1 libnvidia-glsi.so:1
    libnvidia-fbc.so:1 libnvidia-rtcore.so:1 libnvoptix.so:1 libGLX_nvidia.so:0
    libEGL_nvidia.so:0 libGLESv2_nvidia.so:2 libGLESv1_CM_nvidia.so:1
    libnvidia-glvkspirv.so:1
    # ngx
    libnvidia-ngx.so:1
)
pids=()
for entry in "${LIBS[@]}"; do
    name=${entry%%:*}
    suffix=${entry##*:}
    case "$name" in
        libcuda.so) obj=$BUILD/cuda.o ;;
        libnvidia-ml.so) obj=$BUILD/nvml.o ;;
        *) obj=$BUILD/stub.o ;;
    esac
    lib "$name.$VERSION" "$name.$suffix" "$obj" "$name" &
    pids+=("$!")
done
# Not part of the driver: must never be injected.
lib libfoo-unrelated.so.1.2.3 libfoo-unrelated.so.1 "$BUILD/stub.o" &
pids+=("$!")

# ---- executables -----------------------------------------------------------
"${CC[@]}" "${DEFS[@]}" -c "$SRC/sim_smi.c" -o "$BUILD/smi.o"
for tool in nvidia-debugdump nvidia-persistenced nvidia-cuda-mps-server; do
    "${CC[@]}" "${DEFS[@]}" "-DSIM_TOOL_NAME=$(cstr "$tool")" -static \
        -o "$BINDIR/$tool" "$SRC/sim_tool.c" &
    pids+=("$!")
done
# The MPS control daemon and client (sim_mps_control.c), static: it runs in containers too.
"${CC[@]}" "${DEFS[@]}" -static -o "$BINDIR/nvidia-cuda-mps-control" "$SRC/sim_mps_control.c" &
pids+=("$!")
for pid in "${pids[@]}"; do
    wait "$pid"
done
# Needs libnvidia-ml.so.1 at run time (ld cache or LD_LIBRARY_PATH); no rpath.
# Laid out like the GPU machine: the real nvidia-smi in /usr/local/nvidia/bin and, earlier on
# the search path, a host-side shell wrapper that execs it by its host path. A hook that mounts
# the wrapper into a container gives it an nvidia-smi that cannot run there.
mkdir -p "$ROOT/usr/local/nvidia/bin"
gcc -o "$ROOT/usr/local/nvidia/bin/nvidia-smi" "$BUILD/smi.o" -L"$LIBDIR" -lnvidia-ml
printf '#!/bin/sh\n# host convenience wrapper\nexec /usr/local/nvidia/bin/nvidia-smi "$@"\n' >"$BINDIR/nvidia-smi"
chmod 0755 "$BINDIR/nvidia-smi"

# ---- firmware, persistenced socket -----------------------------------------
FW=$ROOT/lib/firmware/nvidia/$VERSION
mkdir -p "$FW"
head -c 64 /dev/urandom >"$FW/gsp_ga10x.bin"
head -c 64 /dev/urandom >"$FW/gsp_tu10x.bin"

# The MPS control daemon's pipe directory, as nvidia-cuda-mps-control -d makes it.
mkdir -p "$ROOT/tmp/nvidia-mps"
mkdir -p "$ROOT/run/nvidia-persistenced"
# Bind by relative name: sun_path is limited to 108 bytes.
(cd "$ROOT/run/nvidia-persistenced" &&
    python3 -c 'import socket; socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind("socket")')
[ -S "$ROOT/run/nvidia-persistenced/socket" ]
mkdir -p "$ROOT/run/nvidia-fabricmanager"
(cd "$ROOT/run/nvidia-fabricmanager" &&
    python3 -c 'import socket; socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind("socket")')

# ---- graphics and display files (not in the ld cache) ------------------------
# Loader files where distros keep them, the GBM backend as the driver lays it out (a link to
# the allocator library), and the X server modules.
mkdir -p "$ROOT/usr/share/vulkan/icd.d" "$ROOT/usr/share/vulkan/implicit_layer.d" \
    "$ROOT/usr/share/glvnd/egl_vendor.d" "$ROOT/usr/share/egl/egl_external_platform.d" \
    "$LIBDIR/gbm" "$ROOT/usr/lib/xorg/modules/drivers" "$ROOT/usr/lib/xorg/modules/extensions"
printf '{"file_format_version":"1.0.1","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.4"}}\n' \
    >"$ROOT/usr/share/vulkan/icd.d/nvidia_icd.json"
printf '{"file_format_version":"1.0.1","layer":{"name":"VK_LAYER_NV_optimus","library_path":"libGLX_nvidia.so.0"}}\n' \
    >"$ROOT/usr/share/vulkan/implicit_layer.d/nvidia_layers.json"
printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libEGL_nvidia.so.0"}}\n' \
    >"$ROOT/usr/share/glvnd/egl_vendor.d/10_nvidia.json"
printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libnvidia-egl-gbm.so.1"}}\n' \
    >"$ROOT/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json"
ln -sfn ../libnvidia-allocator.so.1 "$LIBDIR/gbm/nvidia-drm_gbm.so"
cp "$LIBDIR/libnvidia-glcore.so.$VERSION" "$ROOT/usr/lib/xorg/modules/drivers/nvidia_drv.so"
cp "$LIBDIR/libnvidia-glcore.so.$VERSION" "$ROOT/usr/lib/xorg/modules/extensions/libglxserver_nvidia.so.$VERSION"

# ---- ld cache ----------------------------------------------------------------
echo /usr/lib/x86_64-linux-gnu >"$ROOT/etc/ld.so.conf"
ldconfig -r "$ROOT"
if ! ldconfig -p -C "$ROOT/etc/ld.so.cache" | grep -q '^[[:space:]]*libcuda\.so\.1 '; then
    echo "$0: libcuda.so.1 missing from $ROOT/etc/ld.so.cache" >&2
    exit 1
fi

# ---- device nodes ------------------------------------------------------------
for ((i = 0; i < NGPUS; i++)); do
    mknod -m 0666 "$OUT/dev/nvidia$i" c 195 "$i"
done
mknod -m 0666 "$OUT/dev/nvidiactl" c 195 255
mknod -m 0666 "$OUT/dev/nvidia-modeset" c 195 254
mknod -m 0666 "$OUT/dev/nvidia-uvm" c 510 0
# IMEX channels, as the nvidia-imex daemon's driver makes them (dynamic major).
mkdir -p "$OUT/dev/nvidia-caps-imex-channels"
mknod -m 0666 "$OUT/dev/nvidia-caps-imex-channels/channel0" c 509 0
mknod -m 0666 "$OUT/dev/nvidia-caps-imex-channels/channel1" c 509 1
mknod -m 0666 "$OUT/dev/nvidia-uvm-tools" c 510 1
# DRM nodes (nvidia-drm, the real DRM major 226): GPU i has card<i+1> and renderD<128+i>,
# listed in its PCI device's sysfs drm/ directory as the kernel does. A card0 that belongs to
# no NVIDIA GPU (the host's own display adapter) is there to be left out.
mkdir -p "$OUT/dev/dri" "$OUT/sys/bus/pci/devices/0000:00:02.0/drm/card0"
mknod -m 0666 "$OUT/dev/dri/card0" c 226 0
for ((i = 0; i < NGPUS; i++)); do
    bus=$(printf '0000:%02x:00.0' $((0x10 + i)))
    mkdir -p "$OUT/sys/bus/pci/devices/$bus/drm/card$((i + 1))" \
        "$OUT/sys/bus/pci/devices/$bus/drm/renderD$((128 + i))"
    mknod -m 0666 "$OUT/dev/dri/card$((i + 1))" c 226 $((i + 1))
    mknod -m 0666 "$OUT/dev/dri/renderD$((128 + i))" c 226 $((128 + i))
done

# ---- procfs ------------------------------------------------------------------
PROC=$OUT/proc/driver/nvidia
printf 'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  %s  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Thu Nov  6 05:44:24 UTC 2025\nGCC version:  gcc version 12.2.0\n' \
    "$VERSION" >"$PROC/version"
cat >"$PROC/params" <<'EOF'
ResmanDebugLevel: 4294967295
RmLogonRC: 1
ModifyDeviceFiles: 1
DeviceFileUID: 0
DeviceFileGID: 0
DeviceFileMode: 438
InitializeSystemMemoryAllocations: 1
UsePageAttributeTable: 4294967295
EnableMSI: 1
EOF
echo 'Binary: ""' >"$PROC/registry"

for ((i = 0; i < NGPUS; i++)); do
    bus=$(printf '0000:%02x:00.0' $((0x10 + i)))
    uuid=$(printf 'GPU-5e1f0000-0000-4000-8000-%012x' "$i")
    mkdir -p "$PROC/gpus/$bus"
    # Same tab alignment as the real driver's information file.
    {
        printf 'Model: \t\t NVIDIA H100 80GB HBM3\n'
        printf 'IRQ:   \t\t %d\n' $((150 + i))
        printf 'GPU UUID: \t %s\n' "$uuid"
        printf 'Video BIOS: \t 96.00.99.00.01\n'
        printf 'Bus Type: \t PCIe\n'
        printf 'DMA Size: \t 52 bits\n'
        printf 'DMA Mask: \t 0xfffffffffffff\n'
        printf 'Bus Location: \t %s\n' "$bus"
        printf 'Device Minor: \t %d\n' "$i"
        printf 'GPU Firmware: \t %s\n' "$VERSION"
        printf 'GPU Excluded:\t No\n'
    } >"$PROC/gpus/$bus/information"
    # The driver's other per-GPU files, which tools read beside `information`.
    printf 'Binary: ""\n' >"$PROC/gpus/$bus/registry"
    printf 'Runtime D3 status:          Disabled by default\nVideo Memory:               Active\n' >"$PROC/gpus/$bus/power"
done

# ---- MIG (SIM_MIG=1) ------------------------------------------------------------
# The driver's capability files and nodes for GPU 0 (minor 0) in MIG mode, with the minors the
# real driver gives (/proc/driver/nvidia-caps/mig-minors): config 1, monitor 2, gpu0/gi<G>
# 3+9G, its ci<C> 4+9G+C. nvidia-caps has a dynamic major; 508 is unregistered here, so an
# allowed open gives ENXIO like the GPU nodes.
if [ "$SIM_MIG" = 1 ]; then
    CAPS_MAJOR=508
    CAPS=$PROC/capabilities
    mkdir -p "$CAPS/mig" "$OUT/dev/nvidia-caps"
    # cap FILE MINOR MODE: the procfs file and its node.
    cap() {
        mkdir -p "$(dirname "$1")"
        printf 'DeviceFileMinor: %d\nDeviceFileMode: %d\nDeviceFileModify: 1\n' "$2" "$((8#$3))" >"$1"
        mknod -m "$3" "$OUT/dev/nvidia-caps/nvidia-cap$2" c "$CAPS_MAJOR" "$2"
    }
    cap "$CAPS/mig/config" 1 0400
    cap "$CAPS/mig/monitor" 2 0444
    for gi in 1 2; do
        cap "$CAPS/gpu0/mig/gi$gi/access" $((3 + 9 * gi)) 0444
        cap "$CAPS/gpu0/mig/gi$gi/ci0/access" $((4 + 9 * gi)) 0444
    done
fi

rm -rf -- "$BUILD"
echo "sim driver: $1 ($NGPUS GPUs)"
