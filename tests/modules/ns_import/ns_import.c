// SPDX-License-Identifier: GPL-2.0
/* The passing twin of ns_noimport: imports the ACPI namespace. */
#include <linux/module.h>
#include <linux/init.h>

extern int acpi_table_parse_cedt(int id, void *handler, void *arg);

static int __init ns_import_init(void)
{
	pr_info("%p\n", acpi_table_parse_cedt);
	return 0;
}

static void __exit ns_import_exit(void)
{
}

module_init(ns_import_init);
module_exit(ns_import_exit);
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS(ACPI);
MODULE_DESCRIPTION("abicheck test module: namespace imported");
