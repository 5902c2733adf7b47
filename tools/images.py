"""Build the workspace images (base, then workspace) only when their inputs change.

`ensure_images()` is the one entry point for `make images`, `make demo`, the spawner's tests
and the benchmarks. It returns ``{tag: image id}`` for

* the base image: ``BASE_IMAGE`` from a registry, or ``spe/base:bookworm-<hash>`` built from
  Debian by `images/base/build-base.sh` where no registry can be reached;
* ``spe/workspace:<input hash>`` and ``spe/workspace:latest`` (same id): the researcher image
  of `images/workspace/Dockerfile`, with the workspace client from `egress/client/`;
* with ``hub=True`` (``--hub``), also ``spe/hub:<input hash>`` and ``spe/hub:latest``: the
  control-plane image of `images/hub/Dockerfile` that the Helm chart runs (hub, proxy, egress
  service, netlock init container), built on the same base.

The input hash covers every file of the staged build context, the build arguments and the
base image's id, and is stored as the ``spe.input-hash`` label: an image whose label matches
is reused, so an unchanged tree costs a few `docker image inspect` calls.

Every Docker call goes through `_docker()`. Options come from the environment only in
`options_from_environ()` (the entry point). Standard library plus `hub.exceptions` and
`hub.pipconfig` (the host pip's CA bundle and index, shared with the package mirror); must not
import `egress` (the client is copied into the image as files, never imported here).

A build tool, so it lives in `tools/`, outside the installed distribution: it needs the source
checkout (images/, egress/client/) and no running service imports it (import contract).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from hub.exceptions import Failure
from hub.pipconfig import PIP_CONFIG_FILES, find_extra_ca_bundle, read_pip_config  # noqa: F401 (re-exported)

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_BASE_SCRIPT = REPO_ROOT / "images" / "base" / "build-base.sh"
# Never part of the context: build debris that would change the hash without changing the image.
IGNORED_NAMES = frozenset({"__pycache__", ".pytest_cache", "build", "dist", ".mypy_cache"})
IGNORED_SUFFIXES = (".pyc", ".egg-info")
STAGED_CA_NAME = "extra-ca.pem"
DEFAULT_JUPYTERHUB_VERSION = "6.1.1"
LOCK_PATH = Path(tempfile.gettempdir()) / "spe-images.lock"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """What the build depends on besides the files; see `options_from_environ` for the sources."""

    base_image: str = "python:3.11-slim-bookworm"
    base_tag: str = "spe/base:bookworm"
    base_mode: str = "auto"  # auto | pull | debootstrap (see build-base.sh)
    workspace_repo: str = "spe/workspace"
    hub_repo: str = "spe/hub"
    jupyterhub_version: str = DEFAULT_JUPYTERHUB_VERSION
    extra_ca_bundle: Path | None = None
    pip_index_url: str = ""
    pip_extra_index_url: str = ""
    pip_trusted_host: str = ""
    proxies: tuple[tuple[str, str], ...] = ()
    network: str = ""  # `docker build --network`; empty = the engine's default bridge
    log_dir: Path = REPO_ROOT / ".spe" / "logs"
    force: bool = False


@dataclasses.dataclass(frozen=True)
class ImageKind:
    """One image SPE builds: its Dockerfile and the parts of the repository in its context."""

    name: str
    dockerfile: str
    context: tuple[str, ...]  # directories or files, relative to REPO_ROOT
    first_build: str  # what a first build costs, for the progress line


WORKSPACE = ImageKind("workspace", "images/workspace/Dockerfile", ("images/workspace", "egress/client"), "5-15 min")
HUB = ImageKind("hub", "images/hub/Dockerfile", ("images/hub", "hub", "egress", "pyproject.toml", "README.md"),
                "5-12 min")


# ---------------------------------------------------------------- pure helpers


def iter_context_files(repo_root: Path, kind: ImageKind = WORKSPACE) -> Iterator[tuple[str, Path]]:
    """Yield (path inside the context, file on disk) for the image's build context, sorted."""
    for top in kind.context:
        base = repo_root / top
        if base.is_file():
            yield top, base
            continue
        if not base.is_dir():
            raise Failure(f"{kind.name} image: build context directory {base} is missing")
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(repo_root)
            if any(part in IGNORED_NAMES or part.endswith(IGNORED_SUFFIXES) for part in rel.parts):
                continue
            if path.is_file():
                yield rel.as_posix(), path


def make_build_args(options: BuildOptions, base_ref: str) -> dict[str, str]:
    """The `--build-arg`s of an image build (without the input hash itself)."""
    args = {"BASE_IMAGE": base_ref, "JUPYTERHUB_VERSION": options.jupyterhub_version}
    if options.extra_ca_bundle is not None:
        args["EXTRA_CA_BUNDLE"] = STAGED_CA_NAME
    for name, value in (
        ("PIP_INDEX_URL", options.pip_index_url),
        ("PIP_EXTRA_INDEX_URL", options.pip_extra_index_url),
        ("PIP_TRUSTED_HOST", options.pip_trusted_host),
    ):
        if value:
            args[name] = value
    return args


def make_input_hash(files: Mapping[str, bytes], build_args: Mapping[str, str], base_id: str) -> str:
    """16 hex digits over file names + contents, build args and the base image id.

    Proxy settings are deliberately left out: they change how the build reaches PyPI, not
    what it produces.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        content = files[name]
        digest.update(f"file {name} {len(content)}\n".encode())
        digest.update(content)
    for key in sorted(build_args):
        digest.update(f"arg {key}={build_args[key]}\n".encode())
    digest.update(f"base {base_id}\n".encode())
    return digest.hexdigest()[:16]


def _reachable_url(url: str) -> str:
    """Drop index URLs a container cannot use (file:// mirrors on the build host)."""
    return " ".join(part for part in url.split() if not part.startswith("file:"))


def options_from_environ(environ: Mapping[str, str] | None = None, *, force: bool = False) -> BuildOptions:
    """Read the build options from the environment (the only place that does)."""
    env = os.environ if environ is None else environ
    try:
        from importlib.metadata import version

        jupyterhub_version = version("jupyterhub")
    except Exception:  # the hub is not installed where this runs: use the tested default
        jupyterhub_version = DEFAULT_JUPYTERHUB_VERSION
    proxies = tuple(
        (name, env[name])
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
        if env.get(name)
    )
    return BuildOptions(
        base_image=env.get("BASE_IMAGE", BuildOptions.base_image),
        base_tag=env.get("SPE_BASE_TAG", BuildOptions.base_tag),
        base_mode=env.get("SPE_BASE_MODE", BuildOptions.base_mode),
        workspace_repo=env.get("SPE_WORKSPACE_REPO", BuildOptions.workspace_repo),
        hub_repo=env.get("SPE_HUB_REPO", BuildOptions.hub_repo),
        jupyterhub_version=env.get("SPE_JUPYTERHUB_VERSION", jupyterhub_version),
        extra_ca_bundle=find_extra_ca_bundle(env),
        pip_index_url=_reachable_url(env.get("PIP_INDEX_URL") or read_pip_config(PIP_CONFIG_FILES, "index-url")),
        pip_extra_index_url=_reachable_url(
            env.get("PIP_EXTRA_INDEX_URL") or read_pip_config(PIP_CONFIG_FILES, "extra-index-url")
        ),
        pip_trusted_host=env.get("PIP_TRUSTED_HOST") or read_pip_config(PIP_CONFIG_FILES, "trusted-host"),
        proxies=proxies,
        network=env.get("SPE_BUILD_NETWORK", ""),
        log_dir=Path(env.get("SPE_BUILD_LOG_DIR", str(BuildOptions.log_dir))),
        force=force or bool(env.get("SPE_FORCE")),
    )


# ---------------------------------------------------------------- Docker (the one door)


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise Failure("docker CLI not found: install docker.io (scripts/system-deps.sh)") from None
    if check and result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise Failure(f"docker {args[0]} failed: {last}")
    return result


def _image_label(ref: str, label: str) -> tuple[str, str] | None:
    """(image id, label value) of a local image, or None if there is no such image."""
    result = _docker("image", "inspect", "-f", f'{{{{.Id}}}} {{{{index .Config.Labels "{label}"}}}}', ref, check=False)
    if result.returncode != 0:
        return None
    image_id, _, value = result.stdout.strip().partition(" ")
    return image_id, value if value != "<no value>" else ""


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(f"images: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on this host: concurrent callers wait, then find the image built."""
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base(options: BuildOptions, verbose: bool = False) -> tuple[str, str]:
    """Run build-base.sh (cached by its own input-hash label); return (image ref, image id)."""
    env = dict(os.environ)
    env.update(
        BASE_IMAGE=options.base_image,
        SPE_BASE_TAG=options.base_tag,
        SPE_BASE_MODE=options.base_mode,
        SPE_BUILD_LOG_DIR=str(options.log_dir),
    )
    if options.force:
        env["SPE_FORCE"] = "1"
    else:
        env.pop("SPE_FORCE", None)
    result = subprocess.run(
        ["bash", str(BUILD_BASE_SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=None if verbose else subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or ["see the message above"]
        raise Failure(f"base image: {last[0]}")
    ref = result.stdout.strip().splitlines()[-1]
    found = _image_label(ref, "spe.input-hash")
    if found is None:
        raise Failure(f"base image: build-base.sh reported {ref} but the engine has no such image")
    return ref, found[0]


def _stage_context(options: BuildOptions, kind: ImageKind, directory: Path) -> dict[str, bytes]:
    """Copy the context into `directory`; return {name: content} of everything staged."""
    files: dict[str, bytes] = {}
    for name, source in iter_context_files(REPO_ROOT, kind):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files[name] = source.read_bytes()
    if options.extra_ca_bundle is not None:
        content = options.extra_ca_bundle.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in content:
            raise Failure(f"extra CA bundle {options.extra_ca_bundle} holds no PEM certificate")
        (directory / STAGED_CA_NAME).write_bytes(content)
        files[STAGED_CA_NAME] = content
    return files


def _run_build(kind: ImageKind, command: list[str], log_path: Path, verbose: bool) -> None:
    """Run `docker build`, everything to the log, the `Step n/m` lines to stderr if verbose."""
    tail: list[str] = []
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                tail = (tail + [line.rstrip()])[-30:]
                if verbose and line.startswith("Step "):
                    print(f"images:   {line.rstrip()[:140]}", file=sys.stderr, flush=True)
            code = process.wait()
    if code != 0:
        errors = [t for t in tail if "ERROR" in t or "error" in t.lower()] or tail or ["(no output)"]
        raise Failure(f"{kind.name} image build failed: {errors[-1][:300]} (log: {log_path})")


def ensure_image(kind: ImageKind, repo: str, options: BuildOptions, base_ref: str, base_id: str,
                 verbose: bool = False) -> dict[str, str]:
    """Build <repo>:<hash> unless an image with that input hash exists; tag it :latest."""
    options.log_dir.mkdir(parents=True, exist_ok=True)
    build_args = make_build_args(options, base_ref)
    with tempfile.TemporaryDirectory(prefix=f"spe-{kind.name}-context.") as staging:
        context = Path(staging)
        files = _stage_context(options, kind, context)
        input_hash = make_input_hash(files, build_args, base_id)
        tag = f"{repo}:{input_hash}"
        latest = f"{repo}:latest"
        found = _image_label(tag, "spe.input-hash")
        if found is not None and found[1] == input_hash and not options.force:
            _say(verbose, f"{tag} is up to date")
        else:
            log_path = options.log_dir / f"build-{kind.name}.log"
            _say(verbose, f"building {tag} from {base_ref} (log: {log_path}; first build {kind.first_build})")
            command = ["docker", "build", "-f", kind.dockerfile, "-t", tag, "--build-arg", f"SPE_INPUT_HASH={input_hash}"]
            for key, value in [*build_args.items(), *options.proxies]:
                command += ["--build-arg", f"{key}={value}"]
            if options.network:
                command += ["--network", options.network]
            if options.force:
                command.append("--no-cache")
            command.append(str(context))
            start = time.monotonic()
            _run_build(kind, command, log_path, verbose)
            found = _image_label(tag, "spe.input-hash")
            if found is None or found[1] != input_hash:
                raise Failure(f"{kind.name} image: built {tag} but its spe.input-hash label is not {input_hash}")
            _say(verbose, f"built {tag} in {time.monotonic() - start:.0f} s")
    _docker("tag", tag, latest)
    return {tag: found[0], latest: found[0]}


def ensure_images(verbose: bool = False, options: BuildOptions | None = None, *, hub: bool = False) -> dict[str, str]:
    """Make sure the base and workspace images (and with `hub`, the hub image) exist for the
    current tree; return {tag: id}.

    Rebuilds only what changed; safe to call concurrently (a host-wide lock serialises builds).
    Raises `hub.exceptions.Failure` with one line naming the failed step and its log.
    """
    options = options or options_from_environ()
    with _build_lock():
        base_ref, base_id = ensure_base(options, verbose)
        images = {base_ref: base_id}
        images.update(ensure_image(WORKSPACE, options.workspace_repo, options, base_ref, base_id, verbose))
        if hub:
            images.update(ensure_image(HUB, options.hub_repo, options, base_ref, base_id, verbose))
    return images


def workspace_tag(images: Mapping[str, str], repo: str = BuildOptions.workspace_repo) -> str:
    """The input-hash tag among `ensure_images()`'s result: pin spawns to it, not to :latest,
    which a build of another source tree on the same engine may move. (`repo` = the hub's
    repository for the hub image.)"""
    tags = [t for t in images if t.startswith(f"{repo}:") and t != f"{repo}:latest"]
    if len(tags) != 1:
        raise Failure(f"expected one {repo}:<hash> tag among {sorted(images)}")
    return tags[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild the images without cache")
    parser.add_argument("--hub", action="store_true", help="also build the hub image (Kubernetes)")
    parser.add_argument("--quiet", action="store_true", help="print only the resulting tags")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        images = ensure_images(verbose=not args.quiet, options=options_from_environ(force=args.force), hub=args.hub)
    except Failure as err:
        print(f"images: error: {err}", file=sys.stderr)
        return err.exit_code
    for tag, image_id in images.items():
        print(f"{tag} {image_id[:19]}")
    if not args.quiet:
        print(f"images: ready in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
