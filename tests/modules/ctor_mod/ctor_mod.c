// SPDX-License-Identifier: GPL-2.0
/* A constructor puts a pointer in .init_array; testdata.py adds a .ctors beside it. */
#include <linux/module.h>
#include <linux/init.h>

static int abicheck_ctor_ran;

static void __attribute__((constructor)) abicheck_ctor(void)
{
	abicheck_ctor_ran = 1;
}

static int __init ctor_mod_init(void)
{
	pr_info("ctor ran: %d\n", abicheck_ctor_ran);
	return 0;
}

static void __exit ctor_mod_exit(void)
{
}

module_init(ctor_mod_init);
module_exit(ctor_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: constructor");
