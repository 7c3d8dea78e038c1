"""Run one command in a qemu virtual machine whose only cgroup hierarchy is cgroup v2.

This machine is cgroup v1 (hybrid), and its memory controller cannot move to v2 while
its own sandbox uses it; a VM can boot any kernel with any hierarchy. So:

- the kernel is Debian's (`linux-image-amd64`'s current dependency), fetched with
  `apt-get download` and unpacked with `dpkg-deb -x` into CACHE: it is never installed,
  the host's /boot and /lib/modules are untouched; busybox's depmod indexes its modules;
- the initramfs is built per run (busybox-static, init.sh and the virtio/9p/overlay
  modules it needs to reach the root);
- the guest's root is the host's / shared read-only over virtio-9p under a tmpfs
  overlay, so the VM runs this very .venv, runc, conmon, CNI plugins and registry;
  a per-run directory is the one writable share (`/vmio`: the command, its exit code);
- guest.sh (stage 2) mounts cgroup2 alone at /sys/fs/cgroup (`cgroup_no_v1=all`),
  delegates the controllers from the root, mounts tmpfs where the tests write, runs
  the command in the repo with PYB_IN_VM=1 and powers off;
- qemu has no network device at all; it is killed whatever happens;
- hardware KVM when the host has it, else qemu's emulator (TCG): see accelerator().

Written rather than virtme-ng: virtme-ng would be one more PyPI tool whose init makes
its own choices about mounts (and cgroups), while what is needed is ~60 lines of shell.

    python -m tests.vm.vm [--fetch-kernel] [-- command ...]
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CACHE = Path(os.environ.get("PYB_VM_CACHE", "/var/cache/pybernetes-vm"))
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
KVM_ACCEL = ["-enable-kvm", "-cpu", "host"]
TCG_ACCEL = ["-accel", "tcg,thread=multi", "-cpu", "max"]
# What stage 1 loads to mount the root: virtio-pci, the 9p transport and fs, overlayfs.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

PR_SET_PDEATHSIG = 1
Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Kernel:
    version: str          # e.g. 6.1.0-57-amd64
    vmlinuz: Path
    modules: Path         # <root>/lib/modules/<version>, with modules.dep


@dataclass
class VMResult:
    returncode: int       # the command's; -1 when the VM timed out or never ran it
    output: str           # the serial console: boot progress and the command's output


def unavailable() -> str | None:
    """Why a VM cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "the cgroup v2 VM needs root (to share / with it and to run runc in it)"
    if shutil.which(QEMU) is None:
        return "qemu-system-x86 is not installed (make system-deps)"
    if not os.access(BUSYBOX, os.X_OK):
        return "busybox-static is not installed"
    return None


def accelerator() -> tuple[str, str]:
    """("kvm" | "tcg", why). KVM needs the hardware module (kvm_intel, kvm_amd): this
    machine's /dev/kvm is kvm_pvm (PVM, for nested guests without hardware support), which
    runs only guest kernels built for PVM, and a stock kernel hangs at its first
    instruction there; TCG (qemu's emulator, ~20x slower) runs any kernel.
    PYB_VM_ACCEL=kvm|tcg overrides."""
    forced = os.environ.get("PYB_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced, "PYB_VM_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    if any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd")):
        return "kvm", "/dev/kvm is hardware KVM"
    return "tcg", "/dev/kvm is not hardware KVM (kvm_pvm?): it cannot run a stock kernel"


def _cached_kernel() -> Kernel | None:
    for vmlinuz in sorted(CACHE.glob("*/boot/vmlinuz-*")):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        modules = vmlinuz.parents[1] / "lib" / "modules" / version
        if (modules / "modules.dep").exists():
            return Kernel(version, vmlinuz, modules)
    return None


def _kernel_package() -> str:
    """The versioned package linux-image-amd64 depends on (linux-image-6.1.0-NN-amd64)."""
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        dep = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and dep.startswith("linux-image-"):
            return dep
    raise RuntimeError(f"no linux-image dependency in `apt-cache depends`: {out!r}")


def ensure_kernel(log: Log = _log) -> Kernel:
    """Debian's kernel, unpacked in CACHE (fetched once; a lock keeps parallel test
    workers from fetching it twice)."""
    found = _cached_kernel()
    if found:
        return found
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _cached_kernel()
        if found:
            return found
        return _fetch_kernel(log)


def _fetch_kernel(log: Log) -> Kernel:
    pkg = _kernel_package()
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".fetch-") as tmp:
        os.chmod(tmp, 0o755)   # apt downloads as its _apt user
        log(f"vm: downloading {pkg} (apt-get download, not installed)")
        subprocess.run(["apt-get", "download", "-q", pkg], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        deb = next(Path(tmp).glob("*.deb"))
        root = Path(tmp) / "root"
        log(f"vm: unpacking {deb.name}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        version = next(root.glob("boot/vmlinuz-*")).name.removeprefix("vmlinuz-")
        log(f"vm: indexing the modules of {version} (busybox depmod)")
        subprocess.run([BUSYBOX, "depmod", "-b", str(root), version], check=True)
        dest = CACHE / version
        shutil.rmtree(dest, ignore_errors=True)
        root.rename(dest)
    found = _cached_kernel()
    assert found is not None
    log(f"vm: kernel {found.version} cached in {dest}")
    return found


def _module_order(modules: Path, wanted: tuple[str, ...]) -> list[str]:
    """The .ko paths (relative to `modules`) to insmod for `wanted`, dependencies first."""
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.removesuffix(".ko").replace("-", "_"): m for m in deps}
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        for dep in deps[mod]:
            visit(dep)
        order.append(mod)
    for name in wanted:
        visit(by_name[name.replace("-", "_")])
    return order


def build_initramfs(kernel: Kernel, dest: Path) -> Path:
    """A newc cpio (uncompressed: it is built and read on the same machine) with busybox,
    init.sh as /init and the modules stage 1 loads, listed in /modules.order."""
    tree = dest / "initramfs"
    for d in ("bin", "dev", "proc", "sys", "modules"):
        (tree / d).mkdir(parents=True)
    shutil.copy(BUSYBOX, tree / "bin" / "busybox")
    os.symlink("busybox", tree / "bin" / "sh")
    shutil.copy(HERE / "init.sh", tree / "init")
    os.chmod(tree / "init", 0o755)
    names = []
    for mod in _module_order(kernel.modules, BOOT_MODULES):
        shutil.copy(kernel.modules / mod, tree / "modules" / Path(mod).name)
        names.append(Path(mod).name)
    (tree / "modules.order").write_text("\n".join(names) + "\n")
    image = dest / "initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
    with open(image, "wb") as out:
        subprocess.run([BUSYBOX, "cpio", "-o", "-H", "newc"], cwd=tree, input=files,
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
    return image


def _write_io(io: Path, kernel: Kernel, command: str) -> None:
    shutil.copy(HERE / "guest.sh", io / "guest.sh")
    (io / "env.sh").write_text(f"KVER={shlex.quote(kernel.version)}\n"
                               f"REPO={shlex.quote(str(REPO))}\n"
                               f"KMODS={shlex.quote(str(kernel.modules))}\n")
    (io / "cmd.sh").write_text(command + "\n")


def qemu_args(kernel: Kernel, initramfs: Path, io: Path, cpus: int, memory_mb: int,
              accel: str) -> list:
    share = "security_model=none,multidevs=remap"
    return [
        QEMU, *(KVM_ACCEL if accel == "kvm" else TCG_ACCEL), "-smp", str(cpus), "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-nic", "none", "-display", "none",
        "-no-reboot", "-serial", "stdio",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs),
        "-append", "console=ttyS0 panic=-1 loglevel=4 cgroup_no_v1=all rdinit=/init",
        "-fsdev", f"local,id=hostroot,path=/,readonly=on,{share}",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=vmio,path={io},{share}",
        "-device", "virtio-9p-pci,fsdev=vmio,mount_tag=vmio",
    ]


def run_in_vm(command: str, timeout: float = 600, cpus: int = 2, memory_mb: int = 3072,
              log: Log = _log) -> VMResult:
    """Boot the VM, run `command` (sh) in the repo, return its exit code and the
    console output. Progress lines go to `log` as they come."""
    reason = unavailable()
    if reason:
        raise RuntimeError(reason)
    kernel = ensure_kernel(log)
    with tempfile.TemporaryDirectory(prefix="pyb-vm-") as tmp:
        io = Path(tmp) / "io"
        io.mkdir()
        _write_io(io, kernel, command)
        initramfs = build_initramfs(kernel, Path(tmp))
        accel, why = accelerator()
        log(f"vm: booting {kernel.version} ({cpus} vCPUs, {memory_mb} MiB, no network; "
            f"{accel}: {why})")
        output = _run_qemu(qemu_args(kernel, initramfs, io, cpus, memory_mb, accel),
                           timeout, log)
        rc_file = io / "rc"
        code = int(rc_file.read_text().strip()) if rc_file.exists() else -1
    return VMResult(code, output)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when we die, even by a signal that leaves
    no time for `finally` (a killed test run must not leave a VM running)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_qemu(args: list[str], timeout: float, log: Log) -> str:
    """qemu's console, line by line to `log`; killed at `timeout` and in any case."""
    lines: list[str] = []
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            log(f"  | {line}")
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"vm: timed out after {timeout:.0f}s; killing qemu")
        lines.append(f"vm: timed out after {timeout:.0f}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
    log(f"vm: qemu exited ({proc.returncode}) after {time.monotonic() - started:.0f}s")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--fetch-kernel"]:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            print(f"vm: kernel {ensure_kernel().version} in {CACHE}")
        return 0
    if argv[:1] == ["--"]:
        argv = argv[1:]
    command = shlex.join(argv) if argv else "uname -a; cat /proc/self/cgroup; " \
        "cat /sys/fs/cgroup/cgroup.subtree_control"
    return run_in_vm(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
