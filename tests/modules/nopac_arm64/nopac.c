#include <linux/module.h>
#include <linux/printk.h>

/* Built with -mbranch-protection=none: no paciasp (and no bti) at the entry of
 * init_module, which do_one_initcall() reaches by an indirect call. */
static int __init nopac_init(void)
{
	pr_info("abicheck nopac\n");
	return 0;
}
static void __exit nopac_exit(void) {}
module_init(nopac_init);
module_exit(nopac_exit);
MODULE_LICENSE("GPL");
