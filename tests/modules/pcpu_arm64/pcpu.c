#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/printk.h>

/* A 32-bit absolute reference (R_AARCH64_ABS32) to the module's own per-CPU variable.
 * x86_64's per-CPU symbols are offsets from zero and fit; arm64's resolve to an address in
 * the kernel's __per_cpu_start range (0xffff8000...), which does not. */
DEFINE_PER_CPU(int, abicheck_pcpu);
asm(".pushsection .data\n.globl abicheck_pcpu_ref\nabicheck_pcpu_ref: .word abicheck_pcpu\n.popsection");

static int __init pcpu_init(void)
{
	pr_info("abicheck pcpu %d\n", this_cpu_read(abicheck_pcpu));
	return 0;
}
static void __exit pcpu_exit(void) {}
module_init(pcpu_init);
module_exit(pcpu_exit);
MODULE_LICENSE("GPL");
