// SPDX-License-Identifier: GPL-2.0
/* Marks itself as staging, test and livepatch module, as in-tree builds of those do. */
#include <linux/module.h>
#include <linux/init.h>

static int __init modinfo_flags_init(void)
{
	return 0;
}

static void __exit modinfo_flags_exit(void)
{
}

module_init(modinfo_flags_init);
module_exit(modinfo_flags_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(staging, "Y");
MODULE_INFO(test, "Y");
MODULE_DESCRIPTION("abicheck test module: staging and test markers");
