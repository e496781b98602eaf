// SPDX-License-Identifier: GPL-2.0
/* Calls a function no kernel exports. */
#include <linux/module.h>
#include <linux/init.h>

extern void abicheck_no_such_export(void);

static int __init unknown_sym_init(void)
{
	abicheck_no_such_export();
	return 0;
}

static void __exit unknown_sym_exit(void)
{
}

module_init(unknown_sym_init);
module_exit(unknown_sym_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: unknown symbol");
