// SPDX-License-Identifier: GPL-2.0
/* Uses dep_provider's exports (built with KBUILD_EXTRA_SYMBOLS, or without). */
#include <linux/module.h>
#include <linux/init.h>

extern int abicheck_provider_value(int x);
extern int abicheck_provider_ns_value(int x);

static int __init dep_consumer_init(void)
{
	pr_info("%d %d\n", abicheck_provider_value(1), abicheck_provider_ns_value(1));
	return 0;
}

static void __exit dep_consumer_exit(void)
{
}

module_init(dep_consumer_init);
module_exit(dep_consumer_exit);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(ABICHECK_TEST);
MODULE_DESCRIPTION("abicheck test module: consumer of dep_provider");
