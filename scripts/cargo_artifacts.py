#!/usr/bin/env python3
"""Copies the binaries of `cargo ... --message-format=json` (stdin) into a folder, for the GPU
bundle (scripts/gpu-bundle.sh) and the dry run's debug binaries (scripts/gpu-check.sh):

    cargo build ... --message-format=json | python3 scripts/cargo_artifacts.py DIR

Test and bench executables go to DIR/<kind>-<name> (test-ops, bench-gpu_kernels,
bench-models), the `torchless` binary to DIR/torchless and the C ABI to DIR/libtorchless.so.

A binary's `executable` is the copy cargo puts at the top of the target folder, shared by every
checkout that shares the target folder, and a fresh unit is not copied up again: so a `torchless`
binary reported fresh is refused (the callers touch its main.rs first, so that it is relinked
and copied up just before this script copies it).
"""
import json
import os
import shutil
import sys


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    copied = 0
    for line in sys.stdin:
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") != "compiler-artifact":
            continue
        t = m["target"]
        dst = src = None
        if m.get("executable") and m["profile"]["test"]:
            dst, src = f"{t['kind'][0]}-{t['name']}", m["executable"]
        elif m.get("executable") and t["name"] == "torchless":
            if m.get("fresh"):
                print("error: the torchless binary was not relinked: touch its main.rs first",
                      file=sys.stderr)
                return 1
            dst, src = "torchless", m["executable"]
        elif t["name"] == "models" and m.get("executable"):
            dst, src = "bench-models", m["executable"]
        else:
            for f in m.get("filenames", []):
                if f.endswith("/libtorchless.so"):
                    dst, src = "libtorchless.so", f
        if dst:
            shutil.copy(src, os.path.join(out, dst))
            print(f"{dst} <- {src}", file=sys.stderr)
            copied += 1
    return 0 if copied else 1


if __name__ == "__main__":
    sys.exit(main())
