"""Host helpers: logging, running commands, installing missing apt/pip packages."""

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
_T0 = time.time()


def log(msg):
    """Print what a long step is doing, with the seconds since start."""
    print("[%6.1fs] %s" % (time.time() - _T0, msg), flush=True)


def run(cmd, **kw):
    """Run a command, echoing it; stop the build if it fails."""
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def jobs():
    return str(min(os.cpu_count() or 1, 4))


def _sudo():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo"]
    raise SystemExit("not root and no sudo: install the missing packages by hand")


_apt_updated = False


def ensure_apt(packages):
    """Install the Debian packages that are not installed yet."""
    global _apt_updated
    missing = [p for p in packages
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                                 capture_output=True, text=True).stdout
               != "install ok installed"]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        log("apt-get update")
        run(_sudo() + ["apt-get", "-q", "update"], env=env, stdout=subprocess.DEVNULL)
        _apt_updated = True
    log("apt-get install %s" % " ".join(missing))
    run(_sudo() + ["apt-get", "-q", "install", "-y", "--no-install-recommends"] + missing,
        env=env, stdout=subprocess.DEVNULL)


def venv_python():
    """The Python of the project's test venv (build/venv), created on first use.

    A venv keeps pip away from the system Python (PEP 668) and works the same
    on a developer's machine and in CI.
    """
    vpy = os.path.join(BUILD, "venv", "bin", "python")
    if not os.path.exists(vpy):
        if subprocess.run([sys.executable, "-c", "import ensurepip, venv"],
                          capture_output=True).returncode:
            ensure_apt(["python3-venv"])
        log("create build/venv")
        run([sys.executable, "-m", "venv", os.path.join(BUILD, "venv")])
    return vpy


def ensure_pip(requirements_file):
    """Install the test requirements into build/venv when they change."""
    vpy = venv_python()
    stamp = os.path.join(BUILD, "venv", ".requirements")
    with open(requirements_file) as f:
        wanted = f.read()
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return vpy
    log("pip install -r %s" % os.path.relpath(requirements_file, ROOT))
    run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", requirements_file])
    with open(stamp, "w") as f:
        f.write(wanted)
    return vpy
