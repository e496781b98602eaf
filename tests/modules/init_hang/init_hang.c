// SPDX-License-Identifier: GPL-2.0
/* Its init never returns: insmod waits in init_module() for ever. msleep() sleeps
 * TASK_UNINTERRUPTIBLE but wakes every second, so the hung-task detector (which looks for
 * a task not scheduled for hung_task_timeout_secs) never reports it, and the soft-lockup
 * detector sees a CPU that is idle: the kernel stays healthy, only the load hangs. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/delay.h>

static int __init init_hang_init(void)
{
	pr_info("abicheck init_hang: sleeping for ever\n");
	for (;;)
		msleep(1000);
	return 0;
}

module_init(init_hang_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: init never returns");
