#!/usr/bin/env python3
"""How abicheck.targets.prototypes.HEADERS was chosen, and how to choose again.

    python tools/probe_headers.py [HEADERS_DIR] [--min-gain 60]

Each candidate header (the headers drivers include most: device model, buses, networking,
block, file systems, DMA, sound, media, input...) is preprocessed alone after
linux/module.h against HEADERS_DIR (default: Debian's 6.1.0-47-amd64 from the test data),
with its function bodies cut as the probe cuts them; the vmlinux exports declared there
are counted. Then, greedily, the header adding the most exports not yet declared is kept,
until none adds --min-gain. Prints one line per kept header: the gain, the running total,
and the preprocessing time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CANDIDATES = [
    "linux/fs.h",
    "linux/mm.h",
    "linux/slab.h",
    "linux/sched.h",
    "linux/device.h",
    "linux/pci.h",
    "linux/platform_device.h",
    "linux/netdevice.h",
    "linux/skbuff.h",
    "linux/blkdev.h",
    "linux/interrupt.h",
    "linux/dma-mapping.h",
    "linux/workqueue.h",
    "linux/uaccess.h",
    "linux/cdev.h",
    "linux/usb.h",
    "linux/i2c.h",
    "linux/spi/spi.h",
    "linux/input.h",
    "linux/tty.h",
    "net/sock.h",
    "linux/seq_file.h",
    "linux/debugfs.h",
    "linux/kthread.h",
    "linux/gpio/driver.h",
    "linux/gpio/consumer.h",
    "linux/of.h",
    "linux/clk.h",
    "linux/regulator/consumer.h",
    "linux/firmware.h",
    "linux/miscdevice.h",
    "linux/pm_runtime.h",
    "linux/scatterlist.h",
    "linux/crypto.h",
    "linux/random.h",
    "linux/hrtimer.h",
    "linux/idr.h",
    "linux/bitmap.h",
    "linux/vmalloc.h",
    "linux/highmem.h",
    "linux/pagemap.h",
    "linux/bio.h",
    "linux/acpi.h",
    "linux/irq.h",
    "linux/irqdomain.h",
    "linux/regmap.h",
    "linux/hwmon.h",
    "linux/thermal.h",
    "linux/power_supply.h",
    "linux/leds.h",
    "linux/rtc.h",
    "linux/mtd/mtd.h",
    "linux/ethtool.h",
    "linux/phy.h",
    "net/netlink.h",
    "net/genetlink.h",
    "net/ip.h",
    "net/tcp.h",
    "net/route.h",
    "linux/filter.h",
    "linux/bpf.h",
    "linux/perf_event.h",
    "linux/blk-mq.h",
    "linux/virtio.h",
    "linux/iommu.h",
    "linux/kvm_host.h",
    "drm/drm_drv.h",
    "sound/core.h",
    "sound/pcm.h",
    "linux/hid.h",
    "media/v4l2-device.h",
    "net/mac80211.h",
    "net/cfg80211.h",
    "linux/xarray.h",
    "linux/memcontrol.h",
    "linux/cgroup.h",
    "linux/security.h",
    "linux/nfs_fs.h",
    "linux/dmaengine.h",
    "linux/iio/iio.h",
    "linux/serial_core.h",
    "linux/fb.h",
    "linux/cpufreq.h",
    "linux/efi.h",
    "linux/buffer_head.h",
    "linux/jbd2.h",
    "scsi/scsi_host.h",
    "linux/mmc/host.h",
    "linux/usb/hcd.h",
    "linux/mdio.h",
    "linux/phylink.h",
    "linux/sunrpc/clnt.h",
    "linux/fs_context.h",
    "linux/nvme.h",
    "linux/tpm.h",
    "linux/vfio.h",
    "linux/ptp_clock_kernel.h",
    "linux/netfilter.h",
    "net/xfrm.h",
    "linux/spi/spi-mem.h",
    "linux/mfd/core.h",
    "linux/watchdog.h",
]


def main() -> None:
    from abicheck.targets import load_target
    from abicheck.targets.probe import Compiler, compiler_argv, compiler_for
    from abicheck.targets.prototypes import _DECLARED, _spec_of, without_bodies

    testdata = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
    default = os.path.join(testdata, "root", "usr", "src", "linux-headers-6.1.0-47-amd64")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("headers", nargs="?", default=default)
    ap.add_argument("--min-gain", type=int, default=60)
    args = ap.parse_args()
    target = load_target(args.headers, layouts="none")
    spec = _spec_of(target)
    base, _ = compiler_argv(spec, Compiler.find(compiler_for(spec.config, spec.arch)))
    vmlinux = {n for n, e in (target.exports or {}).items() if e.owner == "vmlinux"}
    declared: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as work:
        src, out = os.path.join(work, "h.c"), os.path.join(work, "h.i")
        for header in ["", *CANDIDATES]:
            with open(src, "w") as f:
                f.write(
                    "#include <linux/module.h>\n" + (f"#include <{header}>\n" if header else "")
                )
            start = time.perf_counter()
            done = subprocess.run([*base, "-E", "-P", "-o", out, src], capture_output=True)
            took = time.perf_counter() - start
            if done.returncode != 0:
                print(f"{header}: does not preprocess here", file=sys.stderr)
                continue
            with open(out, "rb") as f:
                names = {n.decode() for n in _DECLARED.findall(without_bodies(f.read()))}
            declared[header] = names & vmlinux
            print(
                f"{header or 'linux/module.h'}: {len(declared[header])} ({took:.2f} s)",
                file=sys.stderr,
            )
    covered, kept = set(declared.pop("", set())), []
    print(json.dumps({"linux/module.h": len(covered), "vmlinux exports": len(vmlinux)}))
    while declared:
        header, names = max(declared.items(), key=lambda kv: len(kv[1] - covered))
        gain = len(names - covered)
        if gain < args.min_gain:
            break
        covered |= names
        kept.append(header)
        del declared[header]
        print(f"{header:28} +{gain:5}  {len(covered):6}")


if __name__ == "__main__":
    main()
