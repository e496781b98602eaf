// SPDX-License-Identifier: GPL-2.0
/*
 * Reads a member of the kernel's struct task_struct directly: current->pid. Built
 * against headers whose config drifted so that task_struct's members before pid moved
 * (tools/drift.py turns CONFIG_SCHED_INFO off), every CRC and the vermagic still match and
 * the module loads, but it reads another member than pid: silent drift (LY003,
 * loads-unsafe). Nothing is written: the wrong read is harmless, and the line printed
 * beside the kernel's own answer shows what was read.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/sched.h>

static int __init task_pid_init(void)
{
	/* task_tgid_vnr() asks the kernel's own code (__task_pid_nr_ns), which reads
	 * task_struct at the kernel's layout; insmod is single-threaded: tgid == pid */
	pr_info("task_pid: current->pid %d at offset %zu, the kernel says %d\n",
		current->pid, offsetof(struct task_struct, pid), task_tgid_vnr(current));
	return 0;
}

static void __exit task_pid_exit(void)
{
}

module_init(task_pid_init);
module_exit(task_pid_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: reads current->pid from struct task_struct");
