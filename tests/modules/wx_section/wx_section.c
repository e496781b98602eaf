// SPDX-License-Identifier: GPL-2.0
/* Puts a function into a section that is writable and executable. */
#include <linux/module.h>
#include <linux/init.h>

asm(".pushsection .abicheck_wx,\"awx\",@progbits\n"
    ".globl abicheck_wx_stub\n"
    "abicheck_wx_stub: ret\n"
    ".popsection\n");

static int __init wx_section_init(void)
{
	return 0;
}

static void __exit wx_section_exit(void)
{
}

module_init(wx_section_init);
module_exit(wx_section_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: W+X section");
