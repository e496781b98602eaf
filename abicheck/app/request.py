"""``abicheck check`` as one typed, frozen request: the flags merged with the project's
settings once, so that the command body reads fields, not an untyped dict of options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from abicheck.settings import Settings, SettingsError, check_selector, find_config, load_settings


class RequestError(Exception):
    """The flags and settings do not make a request (a usage error)."""


def parse_param(text: str) -> tuple[str, str, str | None]:
    """[MODULE.]NAME[=VALUE] → (module or "", name, value or None), as modprobe splits it."""
    key, eq, value = text.partition("=")
    module, dot, name = key.rpartition(".")
    return module.replace("-", "_") if dot else "", name, value if eq else None


def _selectors(values: tuple[str, ...] | None) -> list[str]:
    return [s.strip() for v in values or () for s in v.split(",") if s.strip()]


@dataclass(frozen=True)
class CheckRequest:
    settings: Settings  # the project's configuration, for the gate (per-module ignores, root)
    modules: tuple[str, ...]
    # targets: --kernel, else the project's kernels; vmlinux/modules_dirs as tagged by
    # bind_to_kernel, each for its own --kernel
    kernels: tuple[str, ...]
    vmlinux: tuple[str, ...]
    modules_dirs: tuple[str, ...]
    layouts: str
    require_layout: bool
    no_cache: bool
    build_tree: str | None
    # the gate: the command line beats the file (--select replaces, --extend-select adds)
    select: tuple[str, ...]
    ignore: tuple[str, ...]
    fail_on: str
    exit_zero: bool
    baseline: str | None
    # how the module is loaded
    assume_loader: str
    assume_sig_enforce: bool
    assume_lockdown: str | None
    assume_secure_boot: bool
    trusted_keys: str | None
    params: tuple[tuple[str, str, str | None], ...]
    max_module_size: int  # MiB
    jobs: int | None
    progress: bool | None
    # the report
    fmt: str
    output_file: str | None
    color: str
    quiet: bool
    severity: str
    statistics: bool
    project_root: str | None
    sarif_category: str | None
    sarif_notes: bool | None

    @classmethod
    def from_flags(cls, opts: Mapping[str, Any]) -> CheckRequest:
        """The request of ``check``'s parsed flags; RequestError for a usage error, checked
        in the order a user meets them: the configuration, then the flags."""
        try:
            path = None if opts["isolated"] else (opts["config_path"] or find_config())
            settings = load_settings(path)
            cli_select, cli_ignore = _selectors(opts["select"]), _selectors(opts["ignore"])
            extend_select = _selectors(opts["extend_select"])
            extend_ignore = _selectors(opts["extend_ignore"])
            for s in cli_select + cli_ignore + extend_select + extend_ignore:
                check_selector(s, "--select/--ignore")
        except SettingsError as e:
            raise RequestError(str(e)) from e
        fmt = opts["fmt"] or settings.format or "text"
        if opts["statistics"] and fmt not in ("text", "concise"):
            raise RequestError(
                f"--statistics prints a table of counts; it does not combine with --format {fmt}"
            )
        if not opts["modules"]:
            raise RequestError("no module given (abicheck check FILE.ko ... or DIR)")
        return cls(
            settings=settings,
            modules=tuple(opts["modules"]),
            kernels=tuple(opts["kernels"]) or tuple(settings.kernels),
            vmlinux=tuple(opts["vmlinux"]),
            modules_dirs=tuple(opts["modules_dirs"]),
            layouts=opts["layouts"] or "auto",
            require_layout=bool(opts["require_layout"]) or settings.require_layout,
            no_cache=bool(opts["no_cache"]),
            build_tree=opts["build_tree"],
            select=tuple((cli_select or settings.select) + extend_select),
            ignore=tuple((cli_ignore or settings.ignore) + extend_ignore),
            fail_on=opts["fail_on"] or settings.fail_on,
            exit_zero=bool(opts["exit_zero"]) or settings.exit_zero,
            baseline=opts["baseline"] or settings.baseline,
            assume_loader=opts["assume_loader"] or settings.assume_loader or "kmod",
            assume_sig_enforce=bool(opts["assume_sig_enforce"]),
            assume_lockdown=opts["assume_lockdown"],
            assume_secure_boot=bool(opts["assume_secure_boot"]),
            trusted_keys=opts["trusted_keys"],
            params=tuple(parse_param(p) for p in opts["params"]),
            max_module_size=opts["max_module_size"],
            jobs=opts["jobs"],
            progress=opts["progress"],
            fmt=fmt,
            output_file=opts["output_file"],
            color=opts["color"],
            quiet=bool(opts["quiet"]),
            severity=opts["severity"] or "info",
            statistics=bool(opts["statistics"]),
            project_root=opts["project_root"],
            sarif_category=opts["sarif_category"],
            sarif_notes=opts["sarif_notes"],
        )
