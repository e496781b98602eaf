#include <linux/module.h>
#include <linux/printk.h>

/* A kernel symbol's address built from signed MOVW groups: R_AARCH64_MOVW_SABS_G2
 * (overflow-checked, signed 48 bits, which every arm64 kernel address 0xffff8000... fits:
 * the loader turns the movz into a movn) then the unchecked G1_NC and G0_NC. */
asm(".pushsection .text\n.globl abicheck_sabs\n.type abicheck_sabs, %function\n"
    "abicheck_sabs: movz x0, #:abs_g2_s:_printk\n"
    "movk x0, #:abs_g1_nc:_printk\nmovk x0, #:abs_g0_nc:_printk\nret\n.popsection");

static int __init sabs_init(void)
{
	pr_info("abicheck sabs\n");
	return 0;
}
static void __exit sabs_exit(void) {}
module_init(sabs_init);
module_exit(sabs_exit);
MODULE_LICENSE("GPL");
