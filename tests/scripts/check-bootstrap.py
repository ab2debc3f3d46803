#!/usr/bin/env python3
"""Checks Lambda deployment packages as the provided.al2023 runtime takes them: a zip holding exactly one
executable `bootstrap`, an arm64 ELF without the embedded SQLite, zipped within the size budget. Prints each
package's size.

Usage: check-bootstrap.py TOOL BUDGET_BYTES NAME=PATH ...
PATH is a `bootstrap.zip` (cargo lambda's), or a directory holding `bootstrap` (sam build's), zipped here with
deflate as `sam deploy` zips it. TOOL prefixes every line (lambda-build, sam-build).
"""

import io
import os
import sys
import zipfile


def package(path: str) -> bytes:
    if os.path.isdir(path):
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(os.path.join(path, "bootstrap"), "bootstrap")
        return packed.getvalue()
    with open(path, "rb") as f:
        return f.read()


def main() -> int:
    tool, budget, packages = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    status = 0
    if not packages:
        print(f"{tool}: nothing was built", file=sys.stderr)
        return 1
    for arg in packages:
        name, _, path = arg.partition("=")
        try:
            data = package(path)
        except OSError as e:
            print(f"{tool}: {name}: no package ({e})", file=sys.stderr)
            status = 1
            continue
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
        info = z.getinfo("bootstrap") if "bootstrap" in names else None
        if names != ["bootstrap"] or info is None or not (info.external_attr >> 16) & 0o111:
            print(f"{tool}: {name} must hold one executable 'bootstrap', holds {names}", file=sys.stderr)
            status = 1
            continue
        binary = z.read("bootstrap")
        head = binary[:20]
        if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183:  # EM_AARCH64
            print(f"{tool}: {name} is not an arm64 ELF executable", file=sys.stderr)
            status = 1
        # On AWS a function talks to a libSQL server; the embedded SQLite (whose file header this is) would be
        # about 0.8 MiB of dead weight, linked in when a build unifies the local stack's features into it.
        if b"SQLite format 3\0" in binary:
            print(f"{tool}: {name} links the embedded SQLite (shared's `embedded` feature)", file=sys.stderr)
            status = 1
        size = len(data)
        print(f"{tool}: {name:<22} bootstrap.zip {size:>8} bytes ({size / 1048576:.2f} MiB)")
        if size > budget:
            print(f"{tool}: {name} is over the budget of {budget} bytes", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
