// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel structs embedded by value, whose layout follows the config: built against
 * headers whose config drifted (tools/drift.py flips CONFIG_DEBUG_SPINLOCK on), the
 * module's spinlock_t, wait_queue_head_t and struct mutex no longer match the kernel's,
 * though every CRC and the vermagic do. Statically initialised, so no lock-debugging
 * function the kernel lacks is referenced; wake_up() hands the queue to kernel code,
 * which reads it at the kernel's own layout.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

struct drift_state {
	spinlock_t lock;
	wait_queue_head_t wq;
	struct mutex mutex;
	int value;
};

static struct drift_state drift_state = {
	.lock = __SPIN_LOCK_UNLOCKED(drift_state.lock),
	.wq = __WAIT_QUEUE_HEAD_INITIALIZER(drift_state.wq),
	.mutex = __MUTEX_INITIALIZER(drift_state.mutex),
};

static int __init drift_struct_init(void)
{
	spin_lock(&drift_state.lock);
	drift_state.value++;
	spin_unlock(&drift_state.lock);
	mutex_lock(&drift_state.mutex);
	drift_state.value++;
	mutex_unlock(&drift_state.mutex);
	wake_up(&drift_state.wq);
	return 0;
}

static void __exit drift_struct_exit(void)
{
}

module_init(drift_struct_init);
module_exit(drift_struct_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("abicheck test module: kernel structs embedded by value");
