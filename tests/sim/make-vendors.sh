#!/usr/bin/env bash
# Adds AMD and Intel GPUs to a simulated host tree OUT (made by make-driver.sh, or empty),
# laid out as the kernel shows them and as AMD's and Intel's own tools read them:
#   OUT/sys/bus/pci/devices/<bus>/{vendor,class,driver -> ../../drivers/<drv>,drm/<node>/}
#   OUT/sys/class/kfd/kfd/topology/nodes/<n>/properties   (node 0: the CPU, simd_count 0)
#   OUT/dev/dri/card<N>, OUT/dev/dri/renderD<N>  (DRM major 226), OUT/dev/kfd (238:0)
# AMD (amdgpu): 0000:c1:00.0 card10/renderD140, 0000:c2:00.0 card11/renderD141, and the
# first GPU's HDMI audio function 0000:c1:00.1 (snd_hda_intel), which is no GPU.
# Intel: 0000:05:00.0 (i915) card12/renderD142, 0000:06:00.0 (xe) card13/renderD143.
# The real /dev/kfd major is dynamic; 238 is one the kernel hands out on many hosts.
set -euo pipefail
OUT=${1:?usage: make-vendors.sh OUT}
SYS=$OUT/sys
mkdir -p "$OUT/dev/dri" "$SYS/bus/pci/devices"

device() { # bus vendor class driver card
    local dir=$SYS/bus/pci/devices/$1
    mkdir -p "$dir" "$SYS/bus/pci/drivers/$4"
    echo "$2" >"$dir/vendor"
    echo "$3" >"$dir/class"
    ln -s "../../drivers/$4" "$dir/driver"
    if [[ -n ${5:-} ]]; then
        local render=$(($5 + 130))
        mkdir -p "$dir/drm/card$5" "$dir/drm/renderD$render"
        mknod -m 0666 "$OUT/dev/dri/card$5" c 226 "$5"
        mknod -m 0666 "$OUT/dev/dri/renderD$render" c 226 "$render"
    fi
}

device 0000:c1:00.0 0x1002 0x030000 amdgpu 10
device 0000:c1:00.1 0x1002 0x040300 snd_hda_intel
device 0000:c2:00.0 0x1002 0x038000 amdgpu 11
device 0000:05:00.0 0x8086 0x030000 i915 12
device 0000:06:00.0 0x8086 0x038000 xe 13
mknod -m 0666 "$OUT/dev/kfd" c 238 0

NODES=$SYS/class/kfd/kfd/topology/nodes
mkdir -p "$NODES/0" "$NODES/1" "$NODES/2"
printf 'cpu_cores_count 64\nsimd_count 0\nmem_banks_count 1\ndrm_render_minor 0\nunique_id 0\n' \
    >"$NODES/0/properties"
# unique_id in decimal as KFD prints it: 0x1f2e3d4c5b6a7980 and 0x0123456789abcdef.
printf 'cpu_cores_count 0\nsimd_count 304\nlocation_id 49408\ndomain 0\ndrm_render_minor 140\nunique_id %s\n' \
    2246800662264969600 >"$NODES/1/properties"
printf 'cpu_cores_count 0\nsimd_count 304\nlocation_id 49664\ndomain 0\ndrm_render_minor 141\nunique_id %s\n' \
    81985529216486895 >"$NODES/2/properties"
