// SPDX-License-Identifier: GPL-2.0
/* Built with -fcommon: an uninitialised global becomes a COMMON symbol. */
#include <linux/module.h>
#include <linux/init.h>

int abicheck_common_counter;

static int __init common_sym_init(void)
{
	abicheck_common_counter++;
	return 0;
}

static void __exit common_sym_exit(void)
{
}

module_init(common_sym_init);
module_exit(common_sym_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: COMMON symbol");
