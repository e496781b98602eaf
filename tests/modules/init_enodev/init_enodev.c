// SPDX-License-Identifier: GPL-2.0
/* Loads, runs its init, and fails there: the kernel returns init's -ENODEV to insmod
 * and frees the module (no message of its own). */
#include <linux/module.h>
#include <linux/init.h>

static int __init init_enodev_init(void)
{
	pr_info("abicheck init_enodev: no device\n");
	return -ENODEV;
}

module_init(init_enodev_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: init fails with -ENODEV");
