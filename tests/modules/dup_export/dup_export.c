// SPDX-License-Identifier: GPL-2.0
/* Exports crc16, which the kernel's own lib/crc16.ko exports too. */
#include <linux/module.h>
#include <linux/init.h>

u16 crc16(u16 crc, const u8 *buffer, size_t len)
{
	return crc ^ (u16)len;
}
EXPORT_SYMBOL(crc16);

static int __init dup_export_init(void)
{
	return 0;
}

static void __exit dup_export_exit(void)
{
}

module_init(dup_export_init);
module_exit(dup_export_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: duplicate export");
