"""Write requirements/serve-{cpu,gpu}.lock.txt: every package an image or Bento installs, each at its
constraints.txt version (the set `make lock` froze from the environment the tests ran in).

    .venv/bin/python requirements/lock.py           # rewrite both lock files (after `make lock`)
    .venv/bin/python requirements/lock.py --check   # exit 1 if either is stale (tests/test_deploy.py checks it)

The direct requirements are requirements/serve-{cpu,gpu}.txt; their dependencies are followed through the installed
packages' metadata (Requires-Dist), with environment markers evaluated for the image's Python and Linux x86_64.
A dependency missing from constraints.txt, or pinned there at a version its dependant does not accept, is an error.
onnxruntime-gpu is not installed here (it never shares an environment with onnxruntime): it is taken to need what
onnxruntime of the same release needs (true of 1.31.1: its Requires-Dist only adds the `cuda` and `cudnn` extras),
and must be that release. Run it with the .venv's Python: its metadata is
what constraints.txt was frozen from.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
# lock file -> (its direct requirements, the Python of the image and Bento that install it)
LOCKS = {
    "serve-cpu.lock.txt": ("serve-cpu.txt", "3.11"),  # docker/Dockerfile.cpu, bentofile.yaml
    "serve-gpu.lock.txt": ("serve-gpu.txt", "3.12"),  # docker/Dockerfile.gpu (Ubuntu 24.04), bentofile.gpu.yaml
}
METADATA_OF = {"onnxruntime-gpu": "onnxruntime"}  # not installed here: the same release's CPU build stands in


def pins(path: Path) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) for each `name==version` line of a requirements file."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if not match:
            raise SystemExit(f"{path.name}: not an exact pin: {line!r}")
        out[canonicalize_name(match[1])] = (match[1], match[2])
    return out


def environment(python: str) -> dict[str, str]:
    env = default_environment()
    env.update(python_version=python, python_full_version=f"{python}.0", implementation_name="cpython",
               platform_python_implementation="CPython", sys_platform="linux", platform_system="Linux",
               os_name="posix", platform_machine="x86_64")
    return env


def closure(requirements: str, python: str) -> dict[str, tuple[str, str]]:
    """canonical name -> (name, version): the direct requirements and everything they need, at constraints.txt's
    versions (the direct requirements' own pins must agree with it)."""
    constraints = pins(CONSTRAINTS)
    direct = pins(REPO / "requirements" / requirements)
    env = environment(python)
    found: dict[str, tuple[str, str]] = {}
    done: set[tuple[str, frozenset[str]]] = set()  # (package, extras) whose dependencies are queued
    todo: list[tuple[Requirement, str]] = [(Requirement(f"{n}=={v}"), requirements) for n, v in direct.values()]
    errors = []
    while todo:
        req, wanted_by = todo.pop()
        key = canonicalize_name(req.name)
        meta_key = METADATA_OF.get(key, key)
        if key in direct:
            name, version = direct[key]
            if meta_key in constraints and constraints[meta_key][1] != version:
                errors.append(f"{requirements} pins {name}=={version}, constraints.txt {constraints[meta_key][1]}")
        elif key in constraints:
            name, version = constraints[key]
        else:
            errors.append(f"{req.name} (needed by {wanted_by}) is not in constraints.txt")
            continue
        if version not in req.specifier:
            errors.append(f"{wanted_by} needs {req}, constraints.txt has {version}")
        found[key] = (name, version)
        if (key, frozenset(req.extras)) in done:
            continue
        done.add((key, frozenset(req.extras)))
        try:
            meta = distribution(METADATA_OF.get(key, name))
        except PackageNotFoundError:
            errors.append(f"{name} is not installed in {sys.prefix}: its dependencies are unknown")
            continue
        if meta.version != version:
            errors.append(f"{name} {meta.version} is installed, constraints.txt says {version}: run make lock")
        extras = sorted(req.extras)
        for dep in map(Requirement, meta.requires or []):
            if dep.marker is None or any(dep.marker.evaluate({**env, "extra": x}) for x in extras or [""]):
                todo.append((dep, name))
    if errors:
        raise SystemExit("\n".join(sorted(set(errors))))
    return found


def render(lock: str) -> str:
    requirements, python = LOCKS[lock]
    found = closure(requirements, python)
    head = [
        f"# Generated by `python requirements/lock.py` from requirements/{requirements} and constraints.txt: all",
        f"# that the image and the Bento install (Python {python}, Linux x86_64), each at its constraints.txt",
        "# version. Installed with --no-deps; do not edit, regenerate (tests/test_deploy.py checks it is current).",
    ]
    return "\n".join([*head, *(f"{n}=={v}" for _, (n, v) in sorted(found.items()))]) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for lock in LOCKS:
        path = REPO / "requirements" / lock
        text = render(lock)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(lock)
        else:
            path.write_text(text)
            print(f"wrote requirements/{lock}: {len(text.splitlines()) - 3} packages")
    if stale:
        print(f"stale: {', '.join(stale)}; run `.venv/bin/python requirements/lock.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
