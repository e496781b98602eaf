"""``abicheck prove``: parsing only; the work is abicheck.prove's.

Exit codes: 0 the kernel did what abicheck predicted for every module, 1 at least one
disagreement (or a load that oopsed or hung), 2 usage error, unreadable input, a missing
host tool or an image that cannot boot.
"""

from __future__ import annotations

import os
import sys

import click

from abicheck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, AbicheckError
from abicheck.reporters import FORMATS


def _fail(message: str) -> None:
    from abicheck.reporters.escape import message_line

    click.echo(message_line(f"abicheck: error: {message}"), err=True)
    sys.exit(EXIT_USAGE)


def _param(text: str) -> tuple[str, str, str | None]:
    """[MODULE.]NAME[=VALUE] → (module or "", name, value or None), as modprobe splits it."""
    key, eq, value = text.partition("=")
    module, dot, name = key.rpartition(".")
    return module.replace("-", "_") if dot else "", name, value if eq else None


def _image(release: str, vmlinux: str | None, image: str | None) -> str:
    from abicheck.targets.layouts import sysroot

    if image:
        return image
    if vmlinux:
        return vmlinux
    path = os.path.join(sysroot(), "boot", f"vmlinuz-{release}")
    if not os.path.exists(path):
        _fail(f"no kernel image to boot: {path} does not exist; give it with --image FILE")
    return path


@click.command("prove")
@click.argument("modules", nargs=-1, required=True, type=click.Path())
@click.option("--kernel", "-k", required=True, metavar="TARGET", help="Headers dir or profile.")
@click.option("--vmlinux", default=None, metavar="FILE", help="The kernel's image (layouts).")
@click.option(
    "--image",
    default=None,
    metavar="FILE",
    help="The bootable image (default: --vmlinux, else $ABICHECK_SYSROOT/boot/vmlinuz-R).",
)
@click.option(
    "--modules-dir",
    default=None,
    metavar="DIR",
    help="lib/modules/RELEASE: in-tree dependencies (default: /lib/modules/R when present).",
)
@click.option("--param", "params", multiple=True, metavar="[MODULE.]NAME=VALUE")
@click.option("--force", "-f", is_flag=True, help="Load with insmod -f.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds per boot.")
@click.option(
    "--load-timeout",
    default=20.0,
    show_default=True,
    help="Seconds one insmod may take; longer is a hang (PV002), and the boot ends there.",
)
@click.option(
    "--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True
)
@click.option(
    "--userland",
    default=None,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="For a kernel of another architecture than the host's (arm64 on amd64): Debian's "
    "busybox-static, kmod and kmod's libraries of that architecture, each extracted here "
    "with dpkg-deb -x.",
)
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="text")
def prove(
    modules: tuple[str, ...],
    kernel: str,
    vmlinux: str | None,
    image: str | None,
    modules_dir: str | None,
    params: tuple[str, ...],
    force: bool,
    timeout: float,
    load_timeout: float,
    accel: str,
    userland: str | None,
    fmt: str,
) -> None:
    """Boot the --kernel in a throwaway VM, load MODULES as insmod/modprobe would, and
    show what the kernel did beside abicheck's prediction.

    Every format carries what the kernel did: a disagreement is a PV001 finding, a load
    that oopsed or hung a PV002 one. Exit 0: the kernel agrees with every prediction; 1:
    a disagreement, an oops or a hang; 2: an error.
    """
    from abicheck.prove import ProveRequest, report
    from abicheck.prove import prove as run_prove
    from abicheck.targets import load_target
    from abicheck.targets.layouts import sysroot

    for m in modules:
        if not os.path.isfile(m):
            _fail(f"{m}: no such module file")
    try:
        target = load_target(kernel, vmlinux, modules_dir)
        tree = modules_dir or os.path.join(sysroot(), "lib", "modules", target.release)
        request = ProveRequest(
            modules=list(modules),
            target=target,
            image=_image(target.release, vmlinux, image),
            modules_dir=tree if os.path.isdir(os.path.join(tree, "kernel")) else None,
            params=[_param(p) for p in params],
            force=force,
            timeout=timeout,
            load_timeout=load_timeout,
            accel=accel,
            userland=userland,
        )
        run = run_prove(request)
    except (AbicheckError, OSError) as e:
        _fail(str(e))
        return
    written = report.render(run, target, fmt)
    for _suffix, text in [("", written)] if isinstance(written, str) else written:
        click.echo(text, nl=False)
    sys.exit(EXIT_FINDINGS if run.failed else EXIT_OK)


def register(group: click.Group) -> None:
    group.add_command(prove)
