// SPDX-License-Identifier: GPL-2.0
/* Its init logs a line of terminal escapes and a forged GitHub workflow command, then
 * fails with -ENODEV: the kernel's line is input, and every output format must show it
 * escaped (printk keeps the bytes; busybox's dmesg prints them raw). */
#include <linux/module.h>
#include <linux/init.h>

static int __init init_hostile_init(void)
{
	pr_info("abicheck init_hostile: \033[31mred\033[0m\n::error::forged %%0A\n");
	return -ENODEV;
}

module_init(init_hostile_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: init logs control bytes and fails");
