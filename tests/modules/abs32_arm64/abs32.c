#include <linux/module.h>
#include <linux/printk.h>

/* A 32-bit absolute reference to a kernel symbol: R_AARCH64_ABS32, which cannot hold an
 * arm64 kernel address (0xffff8000...), so the loader's overflow check refuses it. */
asm(".pushsection .data\n.globl abicheck_abs32\nabicheck_abs32: .word _printk\n.popsection");

static int __init abs32_init(void)
{
	pr_info("abicheck abs32\n");
	return 0;
}
static void __exit abs32_exit(void) {}
module_init(abs32_init);
module_exit(abs32_exit);
MODULE_LICENSE("GPL");
