// SPDX-License-Identifier: GPL-2.0
/* Exports two symbols, one of them in a namespace, for dep_consumer. */
#include <linux/module.h>
#include <linux/init.h>

int abicheck_provider_value(int x)
{
	return x + 1;
}
EXPORT_SYMBOL_GPL(abicheck_provider_value);

int abicheck_provider_ns_value(int x)
{
	return x + 2;
}
EXPORT_SYMBOL_NS_GPL(abicheck_provider_ns_value, ABICHECK_TEST);

static int __init dep_provider_init(void)
{
	return 0;
}

static void __exit dep_provider_exit(void)
{
}

module_init(dep_provider_init);
module_exit(dep_provider_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: exporter");
