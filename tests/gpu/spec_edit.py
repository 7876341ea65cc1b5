"""Edits a `runc spec` config.json for tests/gpu/workloads.sh.

    spec_edit.py CONFIG --script S [--env K=V]... [--hook PATH --hook-config PATH]
                 [--python JSON] [--bind SRC:DST]... [--join TYPE:PATH]... [--hardened]

--script     the container runs `/bin/sh -c S`
--env        added to PATH=/usr/bin:/bin, HOME and PYTHONDONTWRITEBYTECODE=1
--hook       gpuhook as the prestart hook (under NVIDIA's hook name), with GPUHOOK_CONFIG
--python     torch_rootfs.py's output: its directories bound read-only at their own paths
--bind       a read-write bind mount, replacing any mount the spec has at DST (/dev/shm)
--join       join an existing namespace (`ipc:/proc/PID/ns/ipc`, what `docker run
             --ipc=container:A` gives), replacing the spec's new one of that type
--hardened   the runc form of `docker run --read-only --security-opt=no-new-privileges
             --cap-drop=ALL -u 1000:1000 --tmpfs /tmp`
"""

import argparse
import json

CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def bind(mounts, source, destination, read_only):
    mounts[:] = [m for m in mounts if m["destination"] != destination]
    options = ["rbind", "nosuid", "nodev"] + (["ro"] if read_only else [])
    mounts.append(
        {"destination": destination, "type": "bind", "source": source, "options": options}
    )


def harden(spec):
    spec["root"]["readonly"] = True
    process = spec["process"]
    process["noNewPrivileges"] = True
    process["user"] = {"uid": 1000, "gid": 1000}
    process["capabilities"] = {name: [] for name in CAPABILITY_SETS}
    spec["mounts"].append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        }
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--script", required=True)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--hook")
    parser.add_argument("--hook-config")
    parser.add_argument("--python")
    parser.add_argument("--bind", action="append", default=[])
    parser.add_argument("--join", action="append", default=[])
    parser.add_argument("--hardened", action="store_true")
    args = parser.parse_args()
    with open(args.config) as f:
        spec = json.load(f)
    process = spec["process"]
    process["terminal"] = False
    process["args"] = ["/bin/sh", "-c", args.script]
    home = "/tmp" if args.hardened else "/root"
    process["env"] = ["PATH=/usr/bin:/bin", f"HOME={home}", "PYTHONDONTWRITEBYTECODE=1"]
    process["env"] += args.env
    if args.hook:
        spec["hooks"] = {
            "prestart": [
                {
                    "path": args.hook,
                    "args": ["nvidia-container-runtime-hook", "prestart"],
                    "env": [f"GPUHOOK_CONFIG={args.hook_config}"],
                }
            ]
        }
    if args.python:
        with open(args.python) as f:
            for directory in json.load(f)["binds"]:
                bind(spec["mounts"], directory, directory, read_only=True)
    for item in args.bind:
        source, destination = item.split(":", 1)
        bind(spec["mounts"], source, destination, read_only=False)
    namespaces = spec["linux"]["namespaces"]
    for item in args.join:
        kind, path = item.split(":", 1)
        namespaces[:] = [n for n in namespaces if n["type"] != kind]
        namespaces.append({"type": kind, "path": path})
    if args.hardened:
        harden(spec)
    with open(args.config, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main()
