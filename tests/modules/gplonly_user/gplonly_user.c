// SPDX-License-Identifier: GPL-2.0
/* Uses a GPL-only export (ktime_get). testdata.py derives gplonly_prop.ko from it. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/ktime.h>

static int __init gplonly_user_init(void)
{
	pr_info("now %lld\n", ktime_to_ns(ktime_get()));
	return 0;
}

static void __exit gplonly_user_exit(void)
{
}

module_init(gplonly_user_init);
module_exit(gplonly_user_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: GPL-only symbol user");
