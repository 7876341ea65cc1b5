"""Readies a container rootfs for the Python running this script (with its PyTorch), keeping
every NVIDIA driver file out: those must come from gpuhook. For tests/gpu/workloads.sh.

    python3 torch_rootfs.py ROOTFS OUT_JSON [--modules torch,numpy]

1. Probes this Python: imports the modules and, when torch is one, runs a bf16 product on
   cuda:0 so that the CUDA runtime and cuBLAS load; then reads /proc/self/maps for every
   shared object loaded.
2. The directories Python reads, `sys.prefix` (the venv) and every existing `sys.path` entry
   outside it, are to be bind-mounted read-only at the same paths: OUT_JSON's "binds"
   (spec_edit.py --python reads it). Nothing is copied from them.
3. Copies into ROOTFS, at the same paths: the interpreter and the symlinks on the way to it
   from `sys.executable`, and whatever a symlink in the bound directories leads to outside
   them; into ROOTFS/lib/x86_64-linux-gnu under the names the loader asks for, the system
   libraries that the interpreter and every loaded object need (ldd), the driver's own
   libraries' needs included, the driver libraries never.
4. Lists in OUT_JSON's "driver_files" every file it copied, or that the bound directories hold,
   that is a driver file: a file in a directory where `libcuda.so.1` or `nvidia-smi` resolve
   on this host, a symlink into one, or a copy of one (same name and size; a CUDA toolkit stub
   such as a wheel's `libcuda.so` has the name but not the size). The script checks that it is
   empty.

ldd's output is parsed here (no library reads DT_NEEDED with the loader's own search): only
its `name => /path (addr)` lines are used.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

LIB_DIR = "lib/x86_64-linux-gnu"


def probe(modules):
    for name in modules:
        __import__(name)
    if "torch" in modules:
        import torch

        x = torch.ones(256, 256, device="cuda", dtype=torch.bfloat16)
        assert (x @ x)[0, 0].item() == 256, "bf16 product on the host is wrong"
    with open("/proc/self/maps") as maps:
        paths = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if p.startswith("/") and ".so" in os.path.basename(p))


def driver_dirs():
    """Where this host's libcuda.so.1 and nvidia-smi really are."""
    dirs = set()
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in cache.splitlines():
        if line.strip().startswith("libcuda.so.1 ") and "=>" in line:
            dirs.add(os.path.dirname(os.path.realpath(line.split("=>", 1)[1].strip())))
    smi = shutil.which("nvidia-smi")
    if smi:
        dirs.add(os.path.dirname(os.path.realpath(smi)))
    return sorted(dirs)


class Rootfs:
    def __init__(self, root, binds, drivers):
        self.root = root
        self.binds = binds
        self.drivers = drivers
        self.driver_sizes = {}
        for d in drivers:
            for name in os.listdir(d):
                if os.path.isfile(os.path.join(d, name)):
                    size = os.path.getsize(os.path.join(d, name))
                    self.driver_sizes.setdefault(name, set()).add(size)
        self.copied = []
        self.driver_files = []

    def bound(self, path):
        return any(path == b or path.startswith(b + "/") for b in self.binds)

    def is_driver(self, path):
        real = os.path.realpath(path)
        if any(real.startswith(d + "/") for d in self.drivers):
            return True
        sizes = self.driver_sizes.get(os.path.basename(path))
        return bool(sizes) and os.path.isfile(real) and os.path.getsize(real) in sizes

    def copy(self, source, target):
        """Copies the file `source` (symlinks followed) to `target` inside the rootfs."""
        if self.is_driver(source):
            self.driver_files.append(source)
            return
        dest = os.path.join(self.root, target.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.lexists(dest):
            shutil.copy2(source, dest)
            self.copied.append(target)

    def chain(self, path):
        """Recreates the symlinks from `path` to the file it leads to, then copies that file;
        links and files inside the bound directories are there already."""
        for _ in range(40):
            if self.bound(path):
                pass
            elif os.path.islink(path):
                dest = os.path.join(self.root, path.lstrip("/"))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if not os.path.lexists(dest):
                    os.symlink(os.readlink(path), dest)
                    self.copied.append(path)
            elif os.path.isfile(path):
                self.copy(path, path)
                return
            if not os.path.islink(path):
                return
            path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))

    def libraries(self, objects):
        """ldd of each object: copies what it needs from outside the bound directories."""
        needed = {}
        for obj in objects:
            out = subprocess.run(["ldd", obj], capture_output=True, text=True).stdout
            for line in out.splitlines():
                name, arrow, rest = line.strip().partition(" => ")
                if arrow and rest.startswith("/"):
                    needed.setdefault(name, rest.rsplit(" (", 1)[0])
        for name, path in sorted(needed.items()):
            if not self.bound(path) and not self.is_driver(path):
                self.copy(path, f"/{LIB_DIR}/{name}")
        return {os.path.realpath(p) for p in needed.values()}

    def scan_binds(self):
        """Driver files in the bound directories, and links from them to outside them."""
        for top in self.binds:
            for dirpath, dirnames, filenames in os.walk(top):
                for name in filenames + dirnames:
                    path = os.path.join(dirpath, name)
                    if self.is_driver(path):
                        self.driver_files.append(path)
                    elif os.path.islink(path) and not self.bound(os.path.realpath(path)):
                        if os.path.isfile(os.path.realpath(path)):
                            self.chain(path)


def bind_dirs():
    """A venv's sys.prefix and the existing sys.path directories (but this script's own),
    outermost only."""
    venv = [sys.prefix] if sys.prefix != sys.base_prefix else []
    dirs = [os.path.abspath(p) for p in venv + sys.path[1:] if p and os.path.isdir(p)]
    outer = []
    for d in sorted(set(dirs), key=len):
        if not any(d == o or d.startswith(o + "/") for o in outer):
            outer.append(d)
    return outer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs")
    parser.add_argument("out_json")
    parser.add_argument("--modules", default="torch,numpy")
    args = parser.parse_args()
    loaded = probe([m for m in args.modules.split(",") if m])
    drivers = driver_dirs()
    rootfs = Rootfs(os.path.abspath(args.rootfs), bind_dirs(), drivers)
    rootfs.chain(sys.executable)
    rootfs.scan_binds()
    interpreter = os.path.realpath(sys.executable)
    resolved = rootfs.libraries([interpreter] + loaded)
    # Loaded without ldd knowing (dlopen) and outside the bound directories: by file name and
    # by every name the host's directory links to it under.
    for path in loaded:
        if rootfs.bound(path) or rootfs.is_driver(path) or os.path.realpath(path) in resolved:
            continue
        folder = os.path.dirname(path)
        for name in os.listdir(folder):
            if os.path.realpath(os.path.join(folder, name)) == os.path.realpath(path):
                rootfs.copy(path, f"/{LIB_DIR}/{name}")
    result = {
        "python": sys.executable,
        "version": sys.version.split()[0],
        "binds": rootfs.binds,
        "driver_dirs": drivers,
        "copied": rootfs.copied,
        "driver_files": sorted(set(rootfs.driver_files)),
        "loaded": len(loaded),
    }
    with open(args.out_json, "w") as out:
        json.dump(result, out, indent=1)
    print(
        f"python {result['version']} at {sys.executable}; bound read-only: {rootfs.binds}; "
        f"copied {len(rootfs.copied)} files; driver dirs {drivers}; "
        f"driver files found: {result['driver_files'] or 'none'}"
    )


if __name__ == "__main__":
    main()
