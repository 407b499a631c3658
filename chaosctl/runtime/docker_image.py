"""Build the stack image offline: no registry is needed, only a Debian mirror and PyPI on the host.

1. base: `debootstrap --variant=minbase bookworm` with python3, python3-venv, redis-server and
   prometheus (one image runs every container of the stack), tarred into the cache and
   imported as BASE_IMAGE;
2. wheels: `pip download` on the host, for the stack's requirements as pyproject.toml lists
   them (`stack_requirements`), for the image's Python (bookworm: 3.11.2), into the cache;
3. `stack/Dockerfile` built with `network_mode="none"` from a context assembled here
   (stack/ + the wheels), tagged IMAGE and labelled with a hash of that context, so a changed
   service, rule file or requirement means a rebuild and an unchanged one means none.

The rootfs tarball and wheels are cached (CHAOSCTL_CACHE_DIR, else $XDG_CACHE_HOME/chaosctl):
a second build on the same machine skips debootstrap and PyPI. Core code: never prints; long
steps report through `progress(message)`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaosctl.errors import MissingBinaryError, StackStartError
from chaosctl.resources import stack_dir

if TYPE_CHECKING:
    import docker

IMAGE = "chaosctl-shop:latest"
BASE_IMAGE = "localhost/chaosctl-base:bookworm"
HASH_LABEL = "org.chaosctl.context-hash"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "redis-server", "prometheus")
# bookworm's python3; markers such as async-timeout's `python_full_version < "3.11.3"` are
# evaluated for it, not for the host's Python.
IMAGE_PYTHON = "3.11.2"
WHEEL_PLATFORMS = ("manylinux2014_{arch}", "manylinux_2_17_{arch}", "manylinux_2_28_{arch}",
                   "manylinux_2_34_{arch}", "linux_{arch}")
# pyproject extras whose packages the stack image also carries (compose users set
# DATABASE_URL=postgresql://... and need the driver).
IMAGE_EXTRAS = ("postgres",)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def cache_dir() -> Path:
    explicit = os.environ.get("CHAOSCTL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chaosctl"


# -- requirements ----------------------------------------------------------------------------
def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _canon(match.group(1)) if match else ""


def _pyproject() -> dict[str, Any]:
    import tomllib

    for candidate in (stack_dir().parent / "pyproject.toml",
                      Path(__file__).resolve().parents[2] / "pyproject.toml"):
        if candidate.is_file():
            return tomllib.loads(candidate.read_text())
    return {}


def _stack_imports(shop: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for path in sorted(shop.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "shop"}


def stack_requirements() -> list[str]:
    """pyproject.toml's requirement lines the services need: those whose distribution
    provides a module stack/shop imports, those such a package depends on or lists in its
    `standard` extra (uvicorn's uvloop/httptools: used when installed, never imported by the
    shop itself), and IMAGE_EXTRAS. A module the shop imports that no pyproject line covers
    goes in unpinned, so the image never lacks what the code needs.
    One list of requirements (pyproject), never a second copy here."""
    from importlib import metadata

    project = _pyproject().get("project", {})
    declared = list(project.get("dependencies", []))
    by_name = {_req_name(r): r for r in declared}
    module_dists = metadata.packages_distributions()
    wanted: set[str] = set()
    unlisted: set[str] = set()
    for module in _stack_imports(stack_dir() / "shop"):
        dists = {_canon(d) for d in module_dists.get(module, [module])}
        wanted |= dists & set(by_name)
        if not dists & set(by_name) and not dists & _dependencies_of(set(by_name)):
            unlisted |= dists  # imported but in no pyproject line: unpinned, still shipped
    # Walk the installed dependency graph from there: a pyproject line that a chosen package
    # needs (or lists in its `standard` extra) belongs to the stack too.
    todo, seen = list(wanted), set(wanted)
    while todo:
        try:
            reqs = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for req in reqs:
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            name = _req_name(req)
            if (extra is None or extra.group(1) == "standard") and name not in seen:
                seen.add(name)
                todo.append(name)
    wanted |= seen & set(by_name)
    extras = [r for extra in IMAGE_EXTRAS
              for r in project.get("optional-dependencies", {}).get(extra, [])]
    return sorted({by_name[n] for n in wanted} | set(extras) | unlisted)


def _dependencies_of(names: set[str]) -> set[str]:
    """Every distribution `names` pull in (as installed here): starlette comes with fastapi."""
    from importlib import metadata

    todo, seen = list(names), set(names)
    while todo:
        try:
            reqs = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for req in reqs:
            name = _req_name(req)
            if "extra" not in req and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


# -- the context hash --------------------------------------------------------------------------
def _context_files(stack: Path) -> list[Path]:
    files = [stack / "Dockerfile"]
    for sub in ("shop", "image", "prometheus"):
        files += sorted(p for p in (stack / sub).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    return files


def context_hash(stack: Path, requirements: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update("\n".join([*BASE_PACKAGES, IMAGE_PYTHON, *requirements]).encode())
    for path in _context_files(stack):
        digest.update(str(path.relative_to(stack)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# -- steps -----------------------------------------------------------------------------------
def _mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def _run(cmd: list[str], what: str, progress: Progress, **kw: Any) -> None:
    """Run `cmd`, passing its output lines to `progress`; StackStartError with the tail."""
    lines: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, **kw)
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        progress(f"  {what}: {line.rstrip()[:110]}")
    if proc.wait() != 0:
        tail = "\n".join(lines[-15:])
        raise StackStartError(f"{what} failed (exit {proc.returncode}):\n{tail}",
                              hint="see the lines above; the cache is kept for the next try")


def rootfs_tarball(progress: Progress = _quiet) -> Path:
    """The cached bookworm rootfs tarball, made with debootstrap when missing."""
    cache = cache_dir()
    key = hashlib.sha256(" ".join((SUITE, *BASE_PACKAGES)).encode()).hexdigest()[:12]
    tarball = cache / f"rootfs-{SUITE}-{key}.tar"
    if tarball.is_file():
        progress(f"base rootfs: cached {tarball}")
        return tarball
    if shutil.which("debootstrap") is None:
        raise MissingBinaryError(
            "debootstrap not found; the stack image's base is built locally from a Debian "
            "mirror", hint="install it: sudo apt-get install debootstrap (or scripts/engines.sh)")
    if os.geteuid() != 0:
        raise MissingBinaryError("building the base rootfs (debootstrap) needs root",
                                 hint="run `sudo chaosctl stack build` once; later builds "
                                      "reuse the cached tarball")
    cache.mkdir(parents=True, exist_ok=True)
    mirror = _mirror()
    started = time.monotonic()
    progress(f"base rootfs: debootstrap {SUITE} minbase + {', '.join(BASE_PACKAGES)} "
             f"from {mirror} (about a minute) ...")
    with tempfile.TemporaryDirectory(dir=cache, prefix="rootfs-") as tmp:
        root = Path(tmp) / "root"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
              SUITE, str(root), mirror], "debootstrap", progress)
        # Not needed in an image and large: apt lists and the package cache.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (root / sub).glob("*"):
                if p.is_file():
                    p.unlink()
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
             "tar", progress)
        partial.rename(tarball)
    progress(f"base rootfs: {tarball} ({tarball.stat().st_size >> 20} MiB) "
             f"in {time.monotonic() - started:.0f}s")
    return tarball


def wheels_dir(requirements: list[str], progress: Progress = _quiet) -> Path:
    """The cached wheel set for `requirements` (pip download on the host, for IMAGE_PYTHON)."""
    import platform

    key = hashlib.sha256("\n".join([IMAGE_PYTHON, *requirements]).encode()).hexdigest()[:12]
    dest = cache_dir() / f"wheels-{key}"
    if (dest / ".complete").is_file():
        progress(f"wheels: cached {dest}")
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    arch = platform.machine()
    platforms = [a for p in WHEEL_PLATFORMS for a in ("--platform", p.format(arch=arch))]
    progress(f"wheels: pip download {len(requirements)} requirements for Python "
             f"{IMAGE_PYTHON} ...")
    wanted = list(requirements)
    for _ in range(5):
        _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
              "--progress-bar", "off", "-d", str(dest), "--only-binary=:all:",
              "--implementation", "cp", "--python-version", IMAGE_PYTHON, *platforms,
              *wanted], "pip download", progress)
        # pip judges environment markers by the host's Python, not --python-version: a
        # dependency only the image's older Python needs is missing. Add those and go again.
        wanted = _unmet_for_image(dest)
        if not wanted:
            break
        progress(f"wheels: also needed by Python {IMAGE_PYTHON}: {', '.join(wanted)}")
    (dest / ".complete").write_text("\n".join(requirements) + "\n")
    return dest


def _unmet_for_image(wheels: Path) -> list[str]:
    """Requirements of the downloaded wheels that hold on IMAGE_PYTHON but have no wheel."""
    import platform
    import zipfile

    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always carries it
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]

    env = {"python_version": IMAGE_PYTHON.rsplit(".", 1)[0], "python_full_version": IMAGE_PYTHON,
           "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
           "platform_machine": platform.machine(), "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "extra": ""}
    have = {_canon(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    unmet: set[str] = set()
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
            text = zf.read(meta).decode(errors="replace") if meta else ""
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if (req.marker is None or req.marker.evaluate(env)) and _canon(req.name) not in have:
                unmet.add(str(req).split(";")[0].strip())
    return sorted(unmet)


def _build_context(stack: Path, wheels: Path, requirements: list[str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in _context_files(stack):
            tar.add(path, arcname=str(path.relative_to(stack)), recursive=False)
        for wheel in sorted(wheels.glob("*.whl")):
            tar.add(wheel, arcname=f"wheels/{wheel.name}")
        data = ("\n".join(requirements) + "\n").encode()
        info = tarfile.TarInfo("requirements.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


# -- public ----------------------------------------------------------------------------------
def image_is_current(client: docker.DockerClient) -> bool:
    import docker.errors

    try:
        image = client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return False
    labels = image.labels or {}
    return labels.get(HASH_LABEL) == context_hash(stack_dir(), stack_requirements())


def build(client: docker.DockerClient, progress: Progress = _quiet,
          force: bool = False) -> dict[str, Any]:
    """Make IMAGE (and BASE_IMAGE when missing); returns what it did and how long each took."""
    import docker.errors

    stack = stack_dir()
    requirements = stack_requirements()
    digest = context_hash(stack, requirements)
    timings: dict[str, Any] = {"image": IMAGE, "hash": digest, "built": False}
    if not force and image_is_current(client):
        progress(f"image {IMAGE} is up to date ({digest})")
        return timings
    started = time.monotonic()
    try:
        client.images.get(BASE_IMAGE)
        have_base = True
    except docker.errors.ImageNotFound:
        have_base = False
    if not have_base:
        tarball = rootfs_tarball(progress)
        t0 = time.monotonic()
        progress(f"base image: importing {tarball.name} as {BASE_IMAGE} ...")
        repo, _, tag = BASE_IMAGE.rpartition(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
        timings["import_s"] = round(time.monotonic() - t0, 1)
    wheels = wheels_dir(requirements, progress)
    progress(f"image: building {IMAGE} offline (--network=none) ...")
    t0 = time.monotonic()
    context = _build_context(stack, wheels, requirements)
    recent: list[str] = []
    try:
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=IMAGE,
                                      network_mode="none", rm=True, forcerm=True, decode=True,
                                      buildargs={"BASE_IMAGE": BASE_IMAGE},
                                      labels={HASH_LABEL: digest}):
            if "error" in chunk:
                output = "\n".join(recent[-12:])
                raise StackStartError(f"building {IMAGE} failed: {chunk['error'].strip()}\n"
                                      f"{output}",
                                      hint="fix stack/Dockerfile, then `chaosctl stack build`")
            text = str(chunk.get("stream", "")).strip()
            if text:
                recent.append(text)
            if text.startswith("Step "):
                progress(f"  build: {text[:110]}")
    except docker.errors.APIError as exc:
        raise StackStartError(f"building {IMAGE} failed: {exc.explanation or exc}",
                              hint="fix stack/Dockerfile, then `chaosctl stack build`") from None
    timings["build_s"] = round(time.monotonic() - t0, 1)
    timings["total_s"] = round(time.monotonic() - started, 1)
    timings["built"] = True
    progress(f"image {IMAGE} built in {timings['total_s']}s")
    return timings
