// SPDX-License-Identifier: GPL-2.0
/* Carries livepatch=Y as live-patch modules do: taints K, or is refused without LIVEPATCH. */
#include <linux/module.h>
#include <linux/init.h>

static int __init livepatch_flag_init(void)
{
	return 0;
}

static void __exit livepatch_flag_exit(void)
{
}

module_init(livepatch_flag_init);
module_exit(livepatch_flag_exit);
MODULE_LICENSE("GPL");
MODULE_INFO(livepatch, "Y");
MODULE_DESCRIPTION("abicheck test module: livepatch marker");
