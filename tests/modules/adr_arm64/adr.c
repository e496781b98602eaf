#include <linux/module.h>
#include <linux/printk.h>

/* A kernel symbol's address by `adr` (R_AARCH64_ADR_PREL_LO21, +/-1 MiB from the
 * instruction): a module is never placed inside the kernel image, and the loader refuses
 * the relocation unless the module happens to lie within 1 MiB of the symbol. */
asm(".pushsection .text\n.globl abicheck_adr\n.type abicheck_adr, %function\n"
    "abicheck_adr: adr x0, _printk\nret\n.popsection");

static int __init adr_init(void)
{
	pr_info("abicheck adr\n");
	return 0;
}
static void __exit adr_exit(void) {}
module_init(adr_init);
module_exit(adr_exit);
MODULE_LICENSE("GPL");
