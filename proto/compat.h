/*
 * Kernel constants newer than Debian 12's linux-libc-dev (6.1).
 *
 * This is the only place where such constants are defined.  Each one is
 * guarded, so a newer header wins, and every feature defined here is probed
 * at run time (UFFDIO_API answers with what the running kernel offers)
 * before it is used: defining a constant never means the kernel has it.
 */
#ifndef SNAPD_COMPAT_H
#define SNAPD_COMPAT_H

#include <linux/userfaultfd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

/* userfaultfd features, linux 6.4 to 6.8. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON		(1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif

/* The /dev/userfaultfd device, linux 6.1 (present in 6.1 headers, kept for
 * older ones). */
#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC			0xAA
#define USERFAULTFD_IOC_NEW		_IO(USERFAULTFD_IOC, 0x00)
#endif

/* userfaultfd(2) flag, linux 5.11. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY		1
#endif

/* PAGEMAP_SCAN, linux 6.7: struct and ioctl from include/uapi/linux/fs.h. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED	(1 << 0)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)

struct page_region {
	__u64	start;
	__u64	end;
	__u64	categories;
};

#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)

struct pm_scan_arg {
	__u64	size;
	__u64	flags;
	__u64	start;
	__u64	end;
	__u64	walk_end;
	__u64	vec;
	__u64	vec_len;
	__u64	max_pages;
	__u64	category_inverted;
	__u64	category_mask;
	__u64	category_anyof_mask;
	__u64	return_mask;
};

#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)
#endif

/* PROCMAP_QUERY, linux 6.11: struct and ioctl from include/uapi/linux/fs.h. */
#ifndef PROCMAP_QUERY
#define PROCMAP_QUERY_VMA_READABLE		0x01
#define PROCMAP_QUERY_VMA_WRITABLE		0x02
#define PROCMAP_QUERY_VMA_EXECUTABLE		0x04
#define PROCMAP_QUERY_VMA_SHARED		0x08
#define PROCMAP_QUERY_COVERING_OR_NEXT_VMA	0x10
#define PROCMAP_QUERY_FILE_BACKED_VMA		0x20

struct procmap_query {
	__u64	size;
	__u64	query_flags;
	__u64	query_addr;
	__u64	vma_start;
	__u64	vma_end;
	__u64	vma_flags;
	__u64	vma_page_size;
	__u64	vma_offset;
	__u64	inode;
	__u32	dev_major;
	__u32	dev_minor;
	__u32	vma_name_size;
	__u32	build_id_size;
	__u64	vma_name_addr;
	__u64	build_id_addr;
};

#define PROCMAP_QUERY	_IOWR('f', 17, struct procmap_query)
#endif

/* SO_PEERPIDFD, linux 6.5. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77
#endif

#endif /* SNAPD_COMPAT_H */
