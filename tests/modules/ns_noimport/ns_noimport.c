// SPDX-License-Identifier: GPL-2.0
/* Uses acpi_table_parse_cedt (namespace ACPI) without MODULE_IMPORT_NS(ACPI). */
#include <linux/module.h>
#include <linux/init.h>

extern int acpi_table_parse_cedt(int id, void *handler, void *arg);

static int __init ns_noimport_init(void)
{
	pr_info("%p\n", acpi_table_parse_cedt);
	return 0;
}

static void __exit ns_noimport_exit(void)
{
}

module_init(ns_noimport_init);
module_exit(ns_noimport_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: namespace used without import");
