/*
 * The process record: who the process was at a snapshot's point in time,
 * for snapshots taken by attach (snapshot-start with "pid" and no uffd).
 * Every thread's registers as they were when it was stopped, every mapping
 * of the process with what became of it (saved live, copied while stopped,
 * or skipped and why), the auxiliary vector and what ps shows: enough for
 * `memsnapctl export --core` to write an ELF core that gdb opens.
 *
 * One encoder (procrec_encode(), called by the daemon's attach code) and
 * one decoder (procrec_decode(), called by the readers) in proto/procrec.c;
 * nothing else knows the byte layout.  Where it is stored:
 *   zsnap:	a skippable frame ZSNAP_FRAME_PROCESS right after the header
 *		frame, present when the header has ZSNAP_F_PROCESS;
 *   raw:	the file "process.rec" in the NAME.raw directory.
 *
 * STORED ON DISK: the same rules as zsnap.h.  Layout (all little-endian):
 *
 *	magic "ZPROC\0v1" (8 bytes)
 *	le32 machine (EM_X86_64), le32 thread_count, le32 mapping_count,
 *	le32 auxv_len, le32 pid, ppid, pgrp, sid, uid, gid, le32 flags (0)
 *	comm[16], psargs[80]			NUL padded
 *	thread_count times:
 *		le32 tid, le32 flags (PROCREC_T_*), le64 sigpend, le64 sigblk,
 *		PROCREC_GREGS le64 (struct user_regs_struct order),
 *		PROCREC_FPREGS_SIZE bytes (struct user_fpregs_struct, FXSAVE)
 *	mapping_count times:
 *		le64 start, end, offset, dev, inode,
 *		le32 prot (PROT_*), le32 flags (PROCREC_M_*),
 *		le32 state (enum procrec_state), le32 region (-1: none),
 *		le16 path_len, path bytes (no NUL),
 *		le16 reason_len, reason bytes (no NUL)
 *	auxv_len bytes of /proc/PID/auxv
 *	le32 crc32c of everything before it
 */
#ifndef SNAPD_PROCREC_H
#define SNAPD_PROCREC_H

#include <stddef.h>
#include <stdint.h>

#define PROCREC_MAGIC		"ZPROC\0v1"
#define PROCREC_GREGS		27	/* x86_64 struct user_regs_struct */
#define PROCREC_FPREGS_SIZE	512	/* x86_64 struct user_fpregs_struct */

/* Bounds every decoder enforces (a record is read from untrusted files). */
#define PROCREC_THREADS_MAX	65536
#define PROCREC_MAPPINGS_MAX	65536	/* vm.max_map_count's default is 65530 */
#define PROCREC_AUXV_MAX	8192
#define PROCREC_PATH_MAX	4096
#define PROCREC_REASON_MAX	256

/* Thread flags. */
#define PROCREC_T_IN_SYSCALL	0x1	/* stopped inside a system call */
#define PROCREC_T_INJECTED	0x2	/* the thread snapd injected through */

/* Mapping flags. */
#define PROCREC_M_SHARED	0x1	/* MAP_SHARED ('s' in maps) */

/* What became of a mapping. */
enum procrec_state {
	PROCREC_LIVE = 0,	/* write-protected and saved live */
	PROCREC_STOPPED = 1,	/* copied whole while the process was stopped */
	PROCREC_SKIPPED = 2,	/* not saved; reason says why */
};

struct procrec_thread {
	uint32_t	tid;
	uint32_t	flags;
	uint64_t	sigpend;	/* the thread's pending signals */
	uint64_t	sigblk;		/* its blocked signals */
	uint64_t	regs[PROCREC_GREGS];
	uint8_t		fpregs[PROCREC_FPREGS_SIZE];
};

struct procrec_mapping {
	uint64_t	start, end;	/* [start, end) in the process */
	uint64_t	offset;		/* file offset */
	uint64_t	dev, inode;
	uint32_t	prot;		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	uint32_t	flags;		/* PROCREC_M_* */
	uint32_t	state;		/* enum procrec_state */
	int32_t		region;		/* region index in the snapshot, -1 */
	char		*path;		/* as /proc/PID/maps shows it, "" if none */
	char		*reason;	/* "" unless skipped (or why stopped) */
};

struct procrec {
	uint32_t		 machine;	/* EM_X86_64 */
	uint32_t		 pid, ppid, pgrp, sid, uid, gid;
	uint32_t		 flags;
	char			 comm[16];
	char			 psargs[80];	/* the command line, as ps shows it */
	uint32_t		 thread_count;
	struct procrec_thread	*threads;
	uint32_t		 mapping_count;
	struct procrec_mapping	*mappings;
	uint32_t		 auxv_len;
	uint8_t			*auxv;
};

/*
 * Encode rec into a malloc'ed buffer (*buf, *len).  0, or -1 with errno
 * (EINVAL for a record past the bounds above, ENOMEM).
 */
int	procrec_encode(const struct procrec *rec, uint8_t **buf, size_t *len);

/*
 * Decode len bytes at buf into *rec (allocating its arrays and strings).
 * 0, or -1 with a reason in why ("thread 3: truncated", "bad crc"), rec
 * left empty.  Never reads past len, never allocates more than the bounds
 * above allow for what len can hold.
 */
int	procrec_decode(const uint8_t *buf, size_t len, struct procrec *rec,
	    char *why, size_t whylen);

/* Free what procrec_decode() (or a builder) allocated; rec may be zeroed. */
void	procrec_free(struct procrec *rec);

const char *procrec_state_name(uint32_t state);	/* "live", "stopped", "skipped" */

#endif /* SNAPD_PROCREC_H */
