#!/usr/bin/env python3
"""Regenerates the Python modules of proto/traum/v1 into src/traum/v1.

    python3 client/python/generate.py          # rewrite the generated files
    python3 client/python/generate.py --check  # exit 1 if they are stale

The output depends only on the .proto files and the grpcio-tools version,
which is pinned (the `test` extra of pyproject.toml installs it): protoc
writes no timestamps or absolute paths, and the files are generated in a
fresh directory with the protos passed in sorted order.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOT = REPO / "proto"
PROTO_DIR = PROTO_ROOT / "traum" / "v1"
OUT_PACKAGE = HERE / "src" / "traum" / "v1"
# Matches the pin in pyproject.toml; another version writes other bytes.
GRPCIO_TOOLS_VERSION = "1.85.1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def is_generated(name: str) -> bool:
    return name.endswith(GENERATED_SUFFIXES)


def check_tools() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("grpcio-tools")
    except PackageNotFoundError:
        sys.exit(
            "generate.py: grpcio-tools is not installed; run "
            f"`python3 -m pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}` "
            "(or install the package with its `test` extra)"
        )
    if installed != GRPCIO_TOOLS_VERSION:
        sys.exit(
            f"generate.py: grpcio-tools {installed} is installed, but the committed "
            f"files are generated with {GRPCIO_TOOLS_VERSION}; run "
            f"`python3 -m pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}`"
        )


def generate(out: Path) -> list[str]:
    """Runs protoc into `out` and returns the generated file names."""
    import grpc_tools

    protos = sorted(PROTO_DIR.glob("*.proto"))
    if not protos:
        sys.exit(f"generate.py: no .proto files in {PROTO_DIR}")
    # google/protobuf/*.proto (timestamp, duration) ship inside grpc_tools.
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    result = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"generate.py: protoc failed:\n{result.stderr}")
    generated_dir = out / "traum" / "v1"
    names = sorted(p.name for p in generated_dir.iterdir() if is_generated(p.name))
    if not names:
        sys.exit("generate.py: protoc wrote no files")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare instead of writing; exit 1 naming the stale files",
    )
    args = parser.parse_args()
    check_tools()

    with tempfile.TemporaryDirectory(prefix="traum-protoc-") as tmp:
        out = Path(tmp)
        names = generate(out)
        fresh_dir = out / "traum" / "v1"
        committed = sorted(p.name for p in OUT_PACKAGE.glob("*") if is_generated(p.name))

        stale = [
            name
            for name in names
            if not (OUT_PACKAGE / name).is_file()
            or not filecmp.cmp(fresh_dir / name, OUT_PACKAGE / name, shallow=False)
        ]
        # Left over from a .proto that no longer exists.
        orphans = [name for name in committed if name not in names]

        if args.check:
            if not stale and not orphans:
                print(f"generate.py: {len(names)} generated files are up to date")
                return 0
            rel = OUT_PACKAGE.relative_to(REPO)
            for name in stale:
                print(f"stale: {rel / name}", file=sys.stderr)
            for name in orphans:
                print(f"no longer generated: {rel / name}", file=sys.stderr)
            print(
                "generate.py: the generated Python modules differ from proto/; "
                "run `python3 client/python/generate.py` and commit the result",
                file=sys.stderr,
            )
            return 1

        OUT_PACKAGE.mkdir(parents=True, exist_ok=True)
        for name in stale:
            (OUT_PACKAGE / name).write_bytes((fresh_dir / name).read_bytes())
            print(f"wrote {OUT_PACKAGE.relative_to(REPO) / name}")
        for name in orphans:
            (OUT_PACKAGE / name).unlink()
            print(f"removed {OUT_PACKAGE.relative_to(REPO) / name}")
        if not stale and not orphans:
            print(f"generate.py: {len(names)} generated files are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
