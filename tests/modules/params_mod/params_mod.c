// SPDX-License-Identifier: GPL-2.0
/* Declares parameters of several types, for --param checks. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/moduleparam.h>

static int count = 1;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "how many");

static bool verbose;
module_param(verbose, bool, 0444);

static char *label = "x";
module_param(label, charp, 0444);

static unsigned short port = 80;
module_param(port, ushort, 0444);

static int levels[4];
static int nlevels;
module_param_array(levels, int, &nlevels, 0444);

static int custom_set(const char *val, const struct kernel_param *kp)
{
	return param_set_int(val, kp);
}

static const struct kernel_param_ops custom_ops = {
	.set = custom_set,
	.get = param_get_int,
};
static int custom_value;
module_param_cb(custom, &custom_ops, &custom_value, 0444);

static int __init params_mod_init(void)
{
	pr_info("%d %d %s %u %d %d\n", count, verbose, label, port, nlevels, custom_value);
	return 0;
}

static void __exit params_mod_exit(void)
{
}

module_init(params_mod_init);
module_exit(params_mod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: parameters");
