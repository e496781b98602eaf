#include <linux/module.h>
#include <linux/printk.h>

/* The low 16 bits of a kernel symbol's address with the overflow-checked
 * R_AARCH64_MOVW_UABS_G0: an arm64 kernel address (0xffff8000...) never fits 16 bits,
 * so apply_relocate_add() refuses it. */
asm(".pushsection .text\n.globl abicheck_movw\n.type abicheck_movw, %function\n"
    "abicheck_movw: movz x0, #:abs_g0:_printk\nret\n.popsection");

static int __init movw_init(void)
{
	pr_info("abicheck movw\n");
	return 0;
}
static void __exit movw_exit(void) {}
module_init(movw_init);
module_exit(movw_exit);
MODULE_LICENSE("GPL");
