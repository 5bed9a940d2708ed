"""The node image, built without a registry: `refcluster/node:<version>`.

    python -m cluster.deploy.docker_image          # what `make image` runs; prints the tag

Three layers, each cached by what it is made of:
  base   Debian bookworm (minbase + python3, iptables, iproute2, procps) made by debootstrap
         and `docker import`ed as refcluster/base:bookworm-<hash of the package list>;
         built once per machine (≈ 80 s), then reused.
  wheels the project as a wheel built on the host, plus wheels of what a node and refproxy
         import, pinned to the versions in this venv (downloaded once into a cache dir).
  prometheus  (optional) this host's Debian `prometheus` binary on the base, as
         refcluster/prometheus:<hash of the binary> and :latest (compose.yaml's
         `prometheus` profile); None when the binary is not installed.
  node   docker/Dockerfile on top of the base; tagged refcluster/node:<version>-<hash of
         the wheels' contents and the Dockerfile>, and refcluster/node:<version> (what
         compose.yaml runs). An unchanged tree finds its tag and builds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import docker
import docker.errors

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
VERSION = importlib.metadata.version("refcluster")
NODE_REPO = "refcluster/node"
BASE_REPO = "refcluster/base"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "iproute2", "iptables", "procps")
# what `refnode` and `refproxy` import; their own dependencies follow from pip's resolution
RUNTIME_DEPS = ("pycryptodome", "msgpack", "uvloop", "aiofiles", "psutil", "aiohttp", "numpy", "prometheus-client",
                "lupa")  # lupa: the Lua runtime record UDFs run in
LABEL = "io.refcluster"  # on every image, container, network and volume we make
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "refcluster"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def _has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base(client: docker.DockerClient, log=print) -> str:
    tag = f"{BASE_REPO}:{SUITE}-{_digest(' '.join(BASE_PACKAGES).encode())}"
    if _has_image(client, tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (tools/docker-setup.sh installs it)")
    log(f"building {tag} with debootstrap (once per machine, about 80 s)")
    with tempfile.TemporaryDirectory(prefix="refcluster-rootfs-", dir="/var/tmp") as root:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, root],
                       check=True, stdout=subprocess.DEVNULL)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(Path(root, junk), ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "--change", f"LABEL {LABEL}=base", "-", tag], stdin=tar.stdout,
                       check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap tree failed")
    return tag


def _pins() -> list[str]:
    """name==version of every distribution in this venv (constraints for the runtime wheels)."""
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                  if d.metadata["Name"] and d.metadata["Name"].lower() != "refcluster")


def runtime_wheels(log=print) -> Path:
    """Wheels of RUNTIME_DEPS at this venv's versions, in a cache dir named by those pins."""
    pins = _pins()
    wanted = [p for p in pins if p.split("==")[0].lower().replace("_", "-") in RUNTIME_DEPS]
    target = CACHE / f"wheels-{_digest(' '.join(wanted).encode(), ' '.join(pins).encode())}"
    if (target / "done").exists():
        return target
    log(f"fetching runtime wheels into {target}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraints:
        constraints.write("\n".join(pins))
        constraints.flush()
        tmp = target.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--only-binary=:all:", "-w", str(tmp),
                        "-c", constraints.name, *wanted], check=True)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / "done").touch()
    return target


def project_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(REPO)], check=True, stdout=subprocess.DEVNULL, cwd=out)
    return next(out.glob("refcluster-*.whl"))


def _wheel_content(wheel: Path) -> bytes:
    """The RECORD of a wheel: every file's content hash, without the zip's timestamps."""
    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        return z.read(record)


def ensure_image(client: docker.DockerClient | None = None, log=print) -> str:
    """Build refcluster/node:<version>-<hash> unless it exists; returns that tag."""
    client = client or docker.from_env()
    base = ensure_base(client, log)
    deps = runtime_wheels(log)
    with tempfile.TemporaryDirectory(prefix="refcluster-image-") as ctx:
        ctx = Path(ctx)
        shutil.copytree(DOCKER_DIR, ctx, dirs_exist_ok=True)
        wheels = ctx / "wheels"
        wheels.mkdir()
        own = project_wheel(wheels)
        for whl in deps.glob("*.whl"):
            shutil.copy(whl, wheels)
        dockerfile = (ctx / "Dockerfile").read_bytes()
        key = _digest(base.encode(), dockerfile, _wheel_content(own),
                      " ".join(sorted(p.name for p in deps.glob("*.whl"))).encode())
        tag = f"{NODE_REPO}:{VERSION}-{key}"
        if not _has_image(client, tag):
            log(f"building {tag}")
            context = io.BytesIO()
            with tarfile.open(fileobj=context, mode="w") as tar:
                tar.add(ctx, arcname=".")
            context.seek(0)
            client.images.build(fileobj=context, custom_context=True, tag=tag, buildargs={"BASE": base},
                                labels={LABEL: "node"}, rm=True, forcerm=True)
    client.images.get(tag).tag(NODE_REPO, VERSION)  # the moving tag compose.yaml uses
    return tag


PROMETHEUS_REPO = "refcluster/prometheus"
PROMETHEUS_DOCKERFILE = b"""ARG BASE
FROM ${BASE}
COPY prometheus /usr/bin/prometheus
USER nobody
ENTRYPOINT ["/usr/bin/prometheus"]
"""


def ensure_prometheus_image(client: docker.DockerClient | None = None, log=print) -> str | None:
    """refcluster/prometheus from the host's Debian binary (same bookworm libc as the base)."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    client = client or docker.from_env()
    base = ensure_base(client, log)
    content = Path(binary).read_bytes()
    tag = f"{PROMETHEUS_REPO}:{_digest(base.encode(), PROMETHEUS_DOCKERFILE, content)}"
    if not _has_image(client, tag):
        log(f"building {tag}")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, data, mode in (("Dockerfile", PROMETHEUS_DOCKERFILE, 0o644), ("prometheus", content, 0o755)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        client.images.build(fileobj=context, custom_context=True, tag=tag, buildargs={"BASE": base},
                            labels={LABEL: "prometheus"}, rm=True, forcerm=True)
    client.images.get(tag).tag(PROMETHEUS_REPO, "latest")
    return tag


if __name__ == "__main__":
    print(ensure_image())
    print(ensure_prometheus_image() or "no prometheus binary: refcluster/prometheus not built")
