// SPDX-License-Identifier: GPL-2.0
/* Compiled with -mcmodel=small: takes an address with a zero-extended 32-bit relocation. */
#include <linux/module.h>
#include <linux/init.h>

int abicheck_small_target;

static int __init mcmodel_small_init(void)
{
	unsigned long addr;

	/* an absolute 32-bit immediate, as -mcmodel=small code materialises addresses */
	asm volatile("movl $abicheck_small_target, %k0" : "=r"(addr));
	pr_info("%lx %d\n", addr, abicheck_small_target);
	return 0;
}

static void __exit mcmodel_small_exit(void)
{
}

module_init(mcmodel_small_init);
module_exit(mcmodel_small_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: R_X86_64_32 relocation");
