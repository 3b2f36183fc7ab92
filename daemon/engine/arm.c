/*
 * Arming: the snapshot's point in time, and the pre-arm that leads to it.
 * Run by the writer thread (writer.c) before its sweep; nothing here runs
 * on any other thread, except arm_protect_thread(), a helper thread that
 * protects the second half of a large snapshot while the writer protects
 * the first.  Regions copied while stopped (stopped.c) are neither
 * registered, protected nor owner-checked here: arm_finish() has them
 * copied at the armed instant.
 *
 * 1. arm_begin(): open the pidfd, /proc/PID/mem (readmem.c) and pagemap,
 *    UFFDIO_API on the handed-over uffd, register every region for
 *    write-protect faults, open the files of shared file mappings
 *    (readfile.c), write-protect all of it (on two threads when
 *    large: that is the application's pause).  A pre-arm first proves the
 *    uffd is the process's own, region by region, and starts the fault
 *    thread, since the process runs on while protected.
 * 2. arm_finish(): for a direct arm, the point in time is now; then check
 *    that the protection landed in the process we were told about (the
 *    uffd could belong to another one, or be UFFD_USER_MODE_ONLY).  The
 *    writer may hold between the two for the test hook (snapshot.h).
 * 3. Pre-arm only: arm_prearm_wait() waits for snapshot-arm while the fault
 *    thread un-protects and notes what the process writes; arm_rearm() then
 *    protects again only the pages noted (or everything, when cheaper),
 *    with the process stopped by its owner: that is the point in time.
 *
 * The writer tells the main thread ARMED after this; the sweep, the drain
 * and the output are writer.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "procmaps.h"
#include "snapshot-internal.h"
#include "testpause.h"
#include "uffd.h"

#define PM_UFFD_WP	(1ULL << 57)	/* /proc/pid/pagemap: pte is uffd-wp */


/*
 * Write-protecting is the application's pause, and it scales with the
 * number of 4 KiB ptes.  Large snapshots are protected by two threads at
 * once (the kernel takes the mm's lock for reading only), each over half of
 * the bytes, split on a 2 MiB boundary so no huge page is split.
 */
#define ARM_SPLIT_MIN	(256ULL << 20)
#define ARM_RUNNING_CHUNK	(32ULL << 20)	/* see arm_protect_range() */
#define HUGE_2M		(2ULL << 20)

/* Bytes of r to protect: none for a region copied while stopped. */
static uint64_t
arm_live_length(const struct region *r)
{
	return region_stopped(r) ? 0 : r->length;
}

struct arm_half {
	struct snapshot	*s;
	uint64_t	 from, to;	/* byte offsets over all regions, in order */
	int		 err;
	uint32_t	 region;	/* the one that failed */
};

/*
 * While arming, the client keeps the process from changing its mappings,
 * so EAGAIN (an event queued) can only be brief; give up after a second.
 */
static int
arm_protect_retry(struct snapshot *s, uint64_t addr, uint64_t len)
{
	for (int tries = 0; uffd_protect(s->uffd, addr, len) == -1; tries++) {
		if (errno != EAGAIN || tries == 1000)
			return -1;
		usleep(1000);
	}
	return 0;
}

/*
 * Protect [addr, addr + len).  The kernel holds the mm's lock (for
 * reading) for a whole call.  With the process stopped that is best in
 * one call; with it running (a pre-arm) a call over gigabytes would make
 * any mmap() or munmap() of the process, and every page fault queued
 * behind it, wait for the whole protection (tens of milliseconds a GiB):
 * then the range goes in ARM_RUNNING_CHUNK pieces, and the lock is free
 * between them.
 */
static int
arm_protect_range(struct snapshot *s, uint64_t addr, uint64_t len)
{
	uint64_t step = s->req.prearm &&
	    atomic_load(&s->state) == SNAPSHOT_ARMING ?
	    ARM_RUNNING_CHUNK : len;

	for (uint64_t off = 0; off < len; off += step)
		if (arm_protect_retry(s, addr + off, len - off < step ?
		    len - off : step) == -1)
			return -1;
	return 0;
}

static void
arm_protect_span(struct arm_half *h)
{
	struct snapshot	*s = h->s;
	uint64_t	 base = 0;

	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region	*r = &s->regions[i];
		uint64_t	 len = arm_live_length(r);
		uint64_t	 lo = h->from > base ? h->from - base : 0;
		uint64_t	 hi = h->to - base < len ? h->to - base : len;

		if (h->to > base && lo < len && lo < hi &&
		    arm_protect_range(s, r->start + lo, hi - lo) == -1) {
			h->err = errno;
			h->region = i;
			return;
		}
		base += len;
		if (base >= h->to)
			return;
	}
}

static void *
arm_protect_thread(void *arg)
{
	arm_protect_span(arg);
	return NULL;
}

static int
arm_protect_all(struct snapshot *s)
{
	struct arm_half	 half[2] = { { .s = s }, { .s = s } };
	uint64_t	 total = s->pages_live * PAGE_4K, mid, base = 0;
	pthread_t	 t;
	int		 threaded = 0;

	half[0].to = half[1].to = total;
	mid = total;
	if (total >= ARM_SPLIT_MIN) {
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region *r = &s->regions[i];

			if (base + arm_live_length(r) > total / 2) {
				uint64_t addr = (r->start + total / 2 - base) &
				    ~(HUGE_2M - 1);

				mid = base + (addr > r->start ? addr - r->start : 0);
				break;
			}
			base += arm_live_length(r);
		}
	}
	half[0].to = mid;
	half[1].from = mid;
	if (mid < total && pthread_create(&t, NULL, arm_protect_thread,
	    &half[1]) == 0)
		threaded = 1;
	else
		half[0].to = total;
	arm_protect_span(&half[0]);
	if (threaded)
		pthread_join(t, NULL);
	for (int k = 0; k < 2; k++)
		if (half[k].err != 0) {
			struct region *r = &s->regions[half[k].region];

			snapshot_set_error(s, "write-protect region %u "
			    "(0x%llx+%llu): %s", half[k].region,
			    (unsigned long long)r->start,
			    (unsigned long long)r->length, strerror(half[k].err));
			return -1;
		}
	return 0;
}

/*
 * What the owner check protects and un-protects at r's first page: the
 * whole huge page when r starts one (hugepage.c), which a 4 KiB change
 * would split; else the page.
 */
static uint64_t
arm_owner_span(struct snapshot *s, const struct region *r)
{
	uint64_t block;

	return r->start % HUGE_BYTES == 0 &&
	    snapshot_huge_block(s, r, 0, &block) ? HUGE_BYTES : PAGE_4K;
}

/* The uffd-wp bit of the pte of addr in our pid's page tables: 0, 1, -1. */
static int
arm_owner_wp_bit(struct snapshot *s, int pagemap, uint64_t addr)
{
	uint64_t entry;

	if (pread(pagemap, &entry, sizeof(entry),
	    (off_t)(addr / PAGE_4K * sizeof(entry))) != sizeof(entry)) {
		snapshot_set_error(s, "read /proc/%d/pagemap: %s",
		    (int)s->req.pid, strerror(errno));
		return -1;
	}
	return (entry & PM_UFFD_WP) != 0;
}

/*
 * Prove that the uffd belongs to our pid's address space, on region r's
 * first page, which the caller has write-protected through it and which
 * nothing un-protects meanwhile (the fault thread is not reading yet, or
 * the process is held still).  A protection merely present proves nothing:
 * the process may be under another uffd-wp snapshot already (snapd's own, or
 * QEMU's).  So the bit is toggled through our uffd and must follow in the
 * process's pagemap: set, then clear once un-protected (without waking:
 * nobody may write the page meanwhile), then set again.  A uffd of another
 * address space acts on that one and cannot move the bit here.
 *
 * After the last region, the uffd is also probed for UFFD_USER_MODE_ONLY
 * (uffd.h) on the first region in writable memory: with such a uffd the
 * kernel's own writes into the regions would fail with EFAULT in the
 * process.
 */

static int
arm_check_owner(struct snapshot *s, int pagemap, struct region *r)
{
	static const char *const why[3] = {
		"is not write-protected in its page tables",
		("stays write-protected in its page tables when this "
		    "userfaultfd un-protects it (another one protects it)"),
		"is not write-protected again when this userfaultfd protects it",
	};
	struct procmaps		pm;
	struct procmaps_vma	vma;
	uint64_t		span = arm_owner_span(s, r);
	int			bit, rc = -1, traps = 1;

	for (int step = 0; step < 3; step++) {
		int err = 0;

		if (step == 1)
			while (uffd_unprotect(s->uffd, r->start, span, 0) ==
			    -1 && (err = errno) == EAGAIN)
				usleep(1000);	/* an event queued: brief */
		if (step == 2 && arm_protect_retry(s, r->start, span) == -1)
			err = errno;
		if (err != 0 && err != EAGAIN) {
			snapshot_set_error(s, "%s region %u (0x%llx): %s",
			    step == 1 ? "un-protect" : "write-protect",
			    r->index, (unsigned long long)r->start,
			    strerror(err));
			return -1;
		}
		if ((bit = arm_owner_wp_bit(s, pagemap, r->start)) == -1)
			return -1;
		if (bit != (step != 1)) {
			snapshot_set_error(s, "the userfaultfd does not belong "
			    "to process %d: region %u (0x%llx) %s",
			    (int)s->req.pid, r->index,
			    (unsigned long long)r->start, why[step]);
			return -1;
		}
	}
	if (r->index != s->last_live)
		return 0;

	if (procmaps_open(&pm, s->req.pid, s->pidfd) == -1) {
		snapshot_set_error(s, "open /proc/%d/maps: %s",
		    (int)s->req.pid, strerror(errno));
		return -1;
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *p = &s->regions[i];
		int found;

		if (region_stopped(p))
			continue;
		if ((found = procmaps_find(&pm, p->start, &vma)) == -1) {
			snapshot_set_error(s, "read /proc/%d/maps: %s",
			    (int)s->req.pid, strerror(errno));
			goto out;
		}
		if (found == 0 || vma.start > p->start || !vma.writable)
			continue;
		span = arm_owner_span(s, p);
		traps = uffd_traps_kernel_writes(s->uffd, s->req.pid, p->start,
		    span);
		if (traps == -1)
			snapshot_set_error(s, "probe region %u (0x%llx) with a "
			    "kernel write: %s", i,
			    (unsigned long long)p->start, strerror(errno));
		else if (arm_protect_retry(s, p->start, span) == -1) {
			snapshot_set_error(s, "write-protect region %u "
			    "(0x%llx): %s", i, (unsigned long long)p->start,
			    strerror(errno));
			traps = -1;
		}
		break;
	}
	if (traps == 0)
		snapshot_set_error(s, "the userfaultfd was created with "
		    "UFFD_USER_MODE_ONLY: it does not trap the kernel's own "
		    "writes, so a read(2) into a region would fail with "
		    "EFAULT in process %d; create it without that flag "
		    "(through /dev/userfaultfd where the syscall is refused)",
		    (int)s->req.pid);
	else if (traps == 1)
		rc = 0;
out:
	procmaps_close(&pm);
	return rc;
}
/* The point in time: protecting began at t0 and is complete now. */
static void
arm_mark_armed(struct snapshot *s, uint64_t t0)
{
	struct timespec rt;

	s->armed_mono_ns = now_ns();
	s->arm_ns = s->armed_mono_ns - t0;
	clock_gettime(CLOCK_REALTIME, &rt);
	s->armed_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL +
	    (uint64_t)rt.tv_nsec;
}

/*
 * Start the fault thread, once: a pre-arm starts it in arm_begin(), a
 * direct arm once arm_finish() has returned.  writer.c stops it.
 */
int
arm_start_fault_thread(struct snapshot *s)
{
	int err;

	if (s->fault_started)
		return 0;
	if ((err = pthread_create(&s->fault, NULL, fault_thread_main, s))) {
		snapshot_set_error(s, "cannot start the fault thread: %s",
		    strerror(err));
		return -1;
	}
	s->fault_started = 1;
	return 0;
}

/* The process's name for the file and the log, if it can be read. */
static void
arm_read_comm(struct snapshot *s)
{
	char	path[64];
	int	fd;
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)s->req.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, s->comm, sizeof(s->comm) - 1) : -1;
	if (n > 0 && s->comm[n - 1] == '\n')
		s->comm[n - 1] = '\0';
	if (fd >= 0)
		close(fd);
}

/*
 * Everything up to the point in time: every region registered and
 * write-protected.  s->pagemap is the armed mm's pagemap from here on (the
 * owner check's, then hugepage.c's); the writer closes it.  arm_finish()
 * must be called next.
 */
int
arm_begin(struct snapshot *s, struct arm *a)
{
	const struct snapshot_request *req = &s->req;
	uint64_t		 features;
	char			 path[64];
	int			 flags;

	if (s->pidfd == -1)
		s->pidfd = (int)syscall(SYS_pidfd_open, req->pid, 0);
	if (s->pidfd == -1) {
		snapshot_set_error(s, "pidfd_open %d: %s", (int)req->pid,
		    strerror(errno));
		return -1;
	}
	arm_read_comm(s);
	testpause_load(s);
	/* Before pagemap, on which the owner check runs: see readmem.c. */
	if (snapshot_mem_open(s) == -1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)req->pid);
	s->pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (s->pagemap == -1) {
		snapshot_set_error(s, "open %s: %s", path, strerror(errno));
		return -1;
	}
	flags = fcntl(s->uffd, F_GETFL);
	if (flags == -1 || fcntl(s->uffd, F_SETFL, flags | O_NONBLOCK) == -1) {
		snapshot_set_error(s, "userfaultfd: fcntl: %s", strerror(errno));
		goto fail;
	}

	a->t0 = now_ns();
	features = UFFD_WANTED_FEATURES & snapshot_kernel_features();
	if (uffd_api(s->uffd, &features) == -1) {
		snapshot_set_error(s, "UFFDIO_API on the handed-over userfaultfd: "
		    "%s%s", strerror(errno), errno == EINVAL ?
		    " (was UFFDIO_API already called on it?)" : "");
		goto fail;
	}
	s->features = features;
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region *r = &s->regions[i];

		if (region_stopped(r))
			continue;
		if (uffd_register_wp(s->uffd, r->start, r->length) == -1) {
			snapshot_set_error(s, "register region %u (%s, "
			    "0x%llx+%llu) for write-protect: %s%s", i,
			    req->regions[i].name, (unsigned long long)r->start,
			    (unsigned long long)r->length, strerror(errno),
			    errno == EINVAL ? " (not mapped in the process, or "
			    "memory uffd-wp cannot track)" : errno == EBUSY ?
			    " (another userfaultfd has it: another snapshot, or "
			    "a snapshot that tracks the process's writes for "
			    "incremental snapshots; take an incremental one, or "
			    "cancel that snapshot's tracking)" : "");
			goto fail;
		}
	}
	/* Registered: a move or unmap of a region is an event from now on. */
	snapshot_files_open(s);
	/*
	 * Pre-arm: the process runs on while the regions are protected, so
	 * the fault thread must serve its writes from the first one.  Once it
	 * does, a page may be un-protected again at any moment, so the check
	 * that the uffd belongs to the process comes first, on each region's
	 * first page protected alone (a write to it meanwhile waits for the
	 * fault thread, a few microseconds).
	 */
	if (req->prearm) {
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region *r = &s->regions[i];

			if (region_stopped(r))
				continue;
			if (arm_protect_retry(s, r->start,
			    arm_owner_span(s, r)) == -1) {
				snapshot_set_error(s, "write-protect region %u "
				    "(0x%llx): %s", i,
				    (unsigned long long)r->start,
				    strerror(errno));
				goto fail;
			}
			if (arm_check_owner(s, s->pagemap, r) == -1)
				goto fail;
		}
		atomic_store(&s->prearm_active, 1);
		if (arm_start_fault_thread(s) == -1)
			goto fail;
	}
	if (arm_protect_all(s) == -1)
		goto fail;
	return 0;
fail:
	return -1;	/* the writer closes what was opened */
}

/*
 * Everything is protected: for a direct arm this is the point in time, and
 * the owner check runs on every region now; a pre-arm only notes how long
 * it took.
 */
int
arm_finish(struct snapshot *s, struct arm *a)
{
	if (s->req.prearm) {
		s->prearm_ns = now_ns() - a->t0;
		return 0;
	}
	/* Still stopped: the copy is part of the pause and its instant. */
	if (stopped_copy(s) == -1)
		return -1;
	arm_mark_armed(s, a->t0);
	for (uint32_t i = 0; i < s->nregions; i++)
		if (!region_stopped(&s->regions[i]) &&
		    arm_check_owner(s, s->pagemap, &s->regions[i]) == -1)
			return -1;
	return 0;
}

/*
 * Pre-armed: every page is protected and the process runs on; the fault
 * thread un-protects what it writes and notes it.  Wait for snapshot_arm()
 * (the caller has stopped the process by then), a cancel, or the process's
 * exit or exec (the armed mm gone).
 */
int
arm_prearm_wait(struct snapshot *s)
{
	struct timespec	until;
	int		rc = 0;

	pthread_mutex_lock(&s->prearm_lock);
	atomic_store(&s->state, SNAPSHOT_PREARMED);
	pthread_mutex_unlock(&s->prearm_lock);
	log_info("snapshot %llu (pid %d, %s): pre-armed %llu pages in %llu us "
	    "while the process runs; waiting for snapshot-arm",
	    (unsigned long long)s->id, (int)s->req.pid, s->comm,
	    (unsigned long long)s->pages_total,
	    (unsigned long long)(s->prearm_ns / 1000));
	snapshot_notify(s, NOTIFY_PREARMED);

	pthread_mutex_lock(&s->prearm_lock);
	while (!s->arm_requested) {
		if (atomic_load(&s->cancel) || atomic_load(&s->fault_error)) {
			rc = -1;
			break;
		}
		/*
		 * Judged by the armed mm, not by the pid: the leader may
		 * have exited while other threads run on (the pidfd does not
		 * say so, but the mm lives), or the pid may have exec'ed.
		 */
		if (!snapshot_mm_alive(s)) {
			snapshot_mm_gone(s);
			rc = -1;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->prearm_cond, &s->prearm_lock,
		    &until);
	}
	pthread_mutex_unlock(&s->prearm_lock);
	return rc;
}

/* Protect pages [first, first+count) of r again. */
static int
arm_reprotect(struct snapshot *s, struct region *r, uint64_t first,
    uint64_t count)
{
	if (arm_protect_retry(s, r->start + first * PAGE_4K, count * PAGE_4K) ==
	    -1) {
		snapshot_set_error(s, "write-protect region %u again "
		    "(0x%llx+%llu): %s", r->index,
		    (unsigned long long)(r->start + first * PAGE_4K),
		    (unsigned long long)(count * PAGE_4K), strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Each ioctl costs about as much as protecting REARM_RUN_COST ptes in one
 * call: pages written less than that far apart are protected again in one
 * call, the clean ones between included (protecting a protected page
 * changes nothing).  Measured on the project's 2-CPU virtual machine (a
 * PVM guest, whose page tables the host shadows; make bench-tracking): an
 * ioctl that protects one written page takes 2 to 8 us with the process
 * held still, 50 to 60 us when one of its threads runs on the other CPU
 * (the TLB flush interrupts it), protecting a whole region 0.1 to 0.25 us
 * a page: an ioctl is worth some 25 to 100 pages.
 */
#define REARM_RUN_COST	64

struct rearm_plan {
	uint64_t	written;	/* pages noted since the pre-arm */
	uint64_t	runs;		/* ioctls */
	uint64_t	covered;	/* pages those ioctls cover */
};

/*
 * Walk the pages written since the pre-arm in runs.  With apply 0 only
 * count them; with apply 1 protect each run again and clear the notes.
 */
static int
arm_rearm_walk(struct snapshot *s, int apply, struct rearm_plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region	*r = s->by_addr[i];
		uint64_t	 run = 0, end = 0;	/* [run, end) to protect */

		for (uint64_t w = 0; w < (r->npages + 63) / 64; w++) {
			uint64_t bits = apply ? atomic_exchange_explicit(
			    &r->prearm_dirty[w], 0, memory_order_relaxed) :
			    atomic_load_explicit(&r->prearm_dirty[w],
			    memory_order_relaxed);

			pl->written += (uint64_t)__builtin_popcountll(bits);
			while (bits != 0) {
				unsigned	b = (unsigned)__builtin_ctzll(bits);
				uint64_t	page = w * 64 + b;

				bits &= bits - 1;
				if (end != 0 && page - end <= REARM_RUN_COST) {
					end = page + 1;
					continue;
				}
				if (end != 0 && apply && arm_reprotect(s, r,
				    run, end - run) == -1)
					return -1;
				pl->runs += end != 0;
				pl->covered += end - run;
				run = page;
				end = page + 1;
			}
		}
		if (end != 0 && apply &&
		    arm_reprotect(s, r, run, end - run) == -1)
			return -1;
		pl->runs += end != 0;
		pl->covered += end - run;
	}
	return 0;
}

/*
 * The pause of a pre-armed snapshot: stop serving faults in pre-arm mode,
 * then protect again only the pages written since the pre-arm, or, when
 * they are so many that it is cheaper, everything on two threads as a
 * direct arm would.  The process is stopped by its owner meanwhile, so
 * this is the point in time.
 */
int
arm_rearm(struct snapshot *s)
{
	uint64_t		t0 = now_ns();
	struct rearm_plan	pl;
	int			broken, all;

	pthread_mutex_lock(&s->prearm_lock);
	pthread_mutex_lock(&s->event_lock);
	atomic_store(&s->prearm_active, 0);
	pthread_mutex_unlock(&s->event_lock);
	pthread_mutex_unlock(&s->prearm_lock);

	if ((broken = atomic_load(&s->prearm_broken)) != 0) {
		snapshot_set_error(s, "the process %s part of a region while "
		    "pre-armed; nothing was saved",
		    broken == UFFD_EVENT_REMAP ? "moved (mremap)" :
		    broken == UFFD_EVENT_UNMAP ? "unmapped (munmap)" :
		    "discarded (MADV_DONTNEED) without WP_UNPOPULATED");
		return -1;
	}
	arm_rearm_walk(s, 0, &pl);
	all = (pl.runs * REARM_RUN_COST + pl.covered) * 2 > s->pages_total;
	if (all ? arm_protect_all(s) : arm_rearm_walk(s, 1, &pl))
		return -1;
	atomic_store(&s->prearm_pages, pl.written);
	log_debug("snapshot %llu: %llu pages written since the pre-arm, "
	    "protected again %s", (unsigned long long)s->id,
	    (unsigned long long)pl.written, all ? "with everything (cheaper "
	    "than their runs)" : "in their runs");
	/* Still stopped: the copy is part of the pause and its instant. */
	if (stopped_copy(s) == -1)
		return -1;
	arm_mark_armed(s, t0);
	return 0;
}

/*
 * Incremental: what the arm of a full snapshot does to every page, done to
 * the pages written since the parent's armed instant only (track.h); every
 * other page is still protected from then and is the parent's.  The owner
 * of the process holds it still meanwhile, as for any arm; the uffd and
 * the descriptors are the chain's (proven the process's at its base), the
 * memory they are tied to must still be alive.
 */
int
arm_incremental(struct snapshot *s)
{
	const struct track_state	*base = s->track_base;
	uint64_t			 t0;
	struct rearm_plan		 pl;
	int				 all;

	if (s->pidfd == -1)
		s->pidfd = (int)syscall(SYS_pidfd_open, s->req.pid, 0);
	if (s->pidfd == -1) {
		snapshot_set_error(s, "pidfd_open %d: %s", (int)s->req.pid,
		    strerror(errno));
		return -1;
	}
	arm_read_comm(s);
	testpause_load(s);
	if (s->uffd < 0 || s->memfd < 0 || !snapshot_mm_alive(s)) {
		snapshot_set_error(s, "the memory tracked since the parent is "
		    "gone (process %d exited or called exec): take a full "
		    "snapshot", (int)s->req.pid);
		return -1;
	}
	t0 = now_ns();
	if (s->track->reregister) {
		for (uint32_t i = 0; i < s->nregions; i++) {
			struct region *r = &s->regions[i];

			if (region_stopped(r))
				continue;
			if (uffd_register_wp(s->uffd, r->start, r->length) ==
			    -1) {
				snapshot_set_error(s, "register region %u "
				    "(0x%llx+%llu) again, which the process "
				    "unmapped or moved since the parent: %s; "
				    "take a full snapshot", i,
				    (unsigned long long)r->start,
				    (unsigned long long)r->length,
				    strerror(errno));
				return -1;
			}
		}
		s->track->reregister = 0;
	}
	for (uint32_t i = 0; i < s->nregions; i++) {
		struct region			*r = &s->regions[i];
		const struct track_region	*d = &base->regions[i];
		uint64_t			 words = (r->npages + 63) / 64;

		/* Copied whole at the arm (stopped.c), never protected. */
		if (region_stopped(r))
			continue;
		for (uint64_t w = 0; w < words; w++) {
			uint64_t dirty = atomic_load_explicit(&d->dirty[w],
			    memory_order_relaxed);
			uint64_t valid = w == words - 1 && r->npages % 64 ?
			    (1ULL << (r->npages % 64)) - 1 : ~0ULL;

			/* Unchanged: the parent's, nothing to save. */
			atomic_store_explicit(&r->ps.claimed[w], ~dirty & valid,
			    memory_order_relaxed);
			atomic_store_explicit(&r->ps.done[w], ~dirty & valid,
			    memory_order_relaxed);
			atomic_store_explicit(&r->prearm_dirty[w], dirty,
			    memory_order_relaxed);
		}
	}
	arm_rearm_walk(s, 0, &pl);
	s->pages_dirty = pl.written;
	all = (pl.runs * REARM_RUN_COST + pl.covered) * 2 > s->pages_total;
	if (all ? arm_protect_all(s) : arm_rearm_walk(s, 1, &pl))
		return -1;
	/* Still stopped: the copy is part of the pause and its instant. */
	if (stopped_copy(s) == -1)
		return -1;
	arm_mark_armed(s, t0);
	log_debug("snapshot %llu: incremental: %llu pages written since the "
	    "parent protected again %s", (unsigned long long)s->id,
	    (unsigned long long)pl.written, all ? "with everything (cheaper "
	    "than their runs)" : "in their runs");
	return 0;
}
