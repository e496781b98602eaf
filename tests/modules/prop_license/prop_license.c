// SPDX-License-Identifier: GPL-2.0
/* Proprietary license, plain EXPORT_SYMBOL users only: loads, taints P. */
#include <linux/module.h>
#include <linux/init.h>

static int __init prop_license_init(void)
{
	pr_info("abicheck proprietary\n");
	return 0;
}

static void __exit prop_license_exit(void)
{
}

module_init(prop_license_init);
module_exit(prop_license_exit);
MODULE_LICENSE("Proprietary");
MODULE_DESCRIPTION("abicheck test module: proprietary license");
