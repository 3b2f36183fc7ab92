/*
 * `memsnapctl export --core`: a snapshot taken by attach, written as an ELF
 * core file, so that gdb opens it with the executable and shows every
 * thread's stack as it was at the armed instant, although the process
 * kept running (gcore stops it for the whole dump).
 *
 * The file is laid out the way the kernel's binfmt_elf dumps a process:
 *
 *	ELF header (ET_CORE, EM_X86_64)
 *	program headers: one PT_NOTE, then one PT_LOAD per mapping in
 *	    address order (past 65534 of them, e_phnum is PN_XNUM and the
 *	    count is in the one section header that follows, as the kernel
 *	    does)
 *	the notes, in the kernel's order: the main thread's NT_PRSTATUS,
 *	    NT_PRPSINFO, NT_AUXV, NT_FILE, its NT_PRFPREG; then each other
 *	    thread's NT_PRSTATUS and NT_PRFPREG
 *	page-aligned, the bytes of every saved mapping, one after the other
 *
 * Everything comes from the snapshot's process record (procrec.h) and its
 * regions.  A mapping the snapshot saved (live or copied while stopped)
 * gets p_filesz == p_memsz and its region's pages; a skipped one gets
 * p_filesz 0, which gdb reads as "not in the core": it takes file-backed
 * content (text, read-only data) from the executable and the libraries
 * NT_FILE names, as it does for the kernel's cores.  LOST pages are zero.
 *
 * Memory stays bounded whatever the snapshot's size: the headers and notes
 * go through a small buffered writer, each mapping's bytes are read with
 * snap_file_read() CORE_READ_PAGES at a time and written with pwrite();
 * zero pages are left as holes, so the core is as sparse as the memory.
 * The layout is planned first by emitting the notes into a writer that
 * only counts, so the offsets in the headers and what is written can
 * never disagree.  The file is written beside its final name and renamed
 * into place once synced (the way redis saves its rdb).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "ioutil.h"
#include "procrec.h"
#include "snapclient.h"

#define CORE_PAGE_SIZE		4096ULL		/* x86_64, and zsnap's page */
#define CORE_READ_PAGES		1024		/* 4 MiB of memory per read */
#define CORE_OUT_BUFSIZE	65536

_Static_assert(sizeof(elf_gregset_t) == PROCREC_GREGS * sizeof(uint64_t),
    "the record's registers are x86_64's elf_gregset_t");
_Static_assert(sizeof(elf_fpregset_t) == PROCREC_FPREGS_SIZE,
    "the record's fpregs are x86_64's elf_fpregset_t (FXSAVE)");

/* The buffered writer of the headers and notes; fd -1 only counts. */
struct core_out {
	int		 fd;
	uint64_t	 off;		/* bytes emitted so far */
	size_t		 len;		/* of them, still in buf */
	int		 error;		/* errno of the first failed write */
	unsigned char	 buf[CORE_OUT_BUFSIZE];
};

struct core {
	struct snap_file	*f;
	struct procrec		 rec;
	struct core_stats	*st;
	uint32_t		*order;		/* mapping indexes by address */
	uint32_t		 first_thread;	/* the main thread's index */
	uint32_t		 phnum;		/* PT_NOTE + a PT_LOAD per mapping */
	uint64_t		 notes_off;
	uint64_t		 notes_size;
	uint64_t		 data_off;	/* the first saved mapping's bytes */
	uint64_t		 file_size;
	char			*err;
	size_t			 errlen;
};

static int
core_fail(struct core *c, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set the message (errno error); returns -1. */
static int
core_fail(struct core *c, int error, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	errno = error;
	return -1;
}

/* ---- the buffered writer ------------------------------------------------- */

static void
out_flush(struct core_out *o)
{
	if (o->fd != -1 && o->len > 0 && o->error == 0 &&
	    ioutil_write_all(o->fd, o->buf, o->len, -1) == -1)
		o->error = errno;
	o->len = 0;
}

static void
out_write(struct core_out *o, const void *p, size_t n)
{
	const unsigned char	*s = p;
	size_t			 k;

	o->off += n;
	if (o->fd == -1)
		return;
	while (n > 0) {
		if (o->len == sizeof(o->buf))
			out_flush(o);
		k = sizeof(o->buf) - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
	}
}

/* Zeros up to the next multiple of align. */
static void
out_pad(struct core_out *o, uint64_t align)
{
	static const unsigned char	zero[64];
	uint64_t			n = (align - o->off % align) % align;

	while (n > 0) {
		out_write(o, zero, n < sizeof(zero) ? n : sizeof(zero));
		n -= n < sizeof(zero) ? n : sizeof(zero);
	}
}

/* ---- the notes ----------------------------------------------------------- */

/* A note's header and name ("CORE", as the kernel names all of these);
 * descsz bytes of description follow, then out_pad(o, 4). */
static void
note_begin(struct core_out *o, uint32_t type, size_t descsz)
{
	Elf64_Nhdr	nh = { .n_namesz = 5, .n_descsz = descsz, .n_type = type };

	out_write(o, &nh, sizeof(nh));
	out_write(o, "CORE\0\0\0", 8);
}

static void
note_emit(struct core_out *o, uint32_t type, const void *desc, size_t descsz)
{
	note_begin(o, type, descsz);
	out_write(o, desc, descsz);
	out_pad(o, 4);
}

/*
 * NT_PRSTATUS: the thread's registers as it was stopped.  No signal is
 * current: attach stops threads with PTRACE_INTERRUPT, not a signal.
 */
static void
note_prstatus(struct core_out *o, const struct core *c,
    const struct procrec_thread *t)
{
	struct elf_prstatus	ps;

	memset(&ps, 0, sizeof(ps));
	ps.pr_cursig = 0;
	ps.pr_sigpend = t->sigpend;
	ps.pr_sighold = t->sigblk;
	ps.pr_pid = (pid_t)t->tid;
	ps.pr_ppid = (pid_t)c->rec.ppid;
	ps.pr_pgrp = (pid_t)c->rec.pgrp;
	ps.pr_sid = (pid_t)c->rec.sid;
	memcpy(&ps.pr_reg, t->regs, sizeof(ps.pr_reg));
	ps.pr_fpvalid = 1;
	note_emit(o, NT_PRSTATUS, &ps, sizeof(ps));
}

/* NT_PRPSINFO: what ps showed; the state is 'T', stopped by attach. */
static void
note_prpsinfo(struct core_out *o, const struct procrec *rec)
{
	struct elf_prpsinfo	pi;

	memset(&pi, 0, sizeof(pi));
	pi.pr_state = 3;
	pi.pr_sname = 'T';
	pi.pr_uid = rec->uid;
	pi.pr_gid = rec->gid;
	pi.pr_pid = (pid_t)rec->pid;
	pi.pr_ppid = (pid_t)rec->ppid;
	pi.pr_pgrp = (pid_t)rec->pgrp;
	pi.pr_sid = (pid_t)rec->sid;
	memcpy(pi.pr_fname, rec->comm, sizeof(pi.pr_fname));
	memcpy(pi.pr_psargs, rec->psargs, sizeof(pi.pr_psargs) - 1);
	note_emit(o, NT_PRPSINFO, &pi, sizeof(pi));
}

/* A mapping of a file (not [heap], [stack] or anonymous): NT_FILE's. */
static int
mapping_is_file(const struct procrec_mapping *m)
{
	return m->path[0] == '/';
}

/*
 * NT_FILE: count, page size, then (start, end, offset in pages) of every
 * file-backed mapping, then their paths, NUL-terminated: how gdb finds
 * the libraries whose text a skipped mapping leaves out of the core.
 */
static void
note_file(struct core_out *o, const struct core *c)
{
	const struct procrec	*rec = &c->rec;
	uint64_t		 head[2], triple[3], count = 0, size;
	uint32_t		 i;

	size = sizeof(head);
	for (i = 0; i < rec->mapping_count; i++) {
		if (!mapping_is_file(&rec->mappings[i]))
			continue;
		count++;
		size += sizeof(triple) + strlen(rec->mappings[i].path) + 1;
	}
	head[0] = count;
	head[1] = CORE_PAGE_SIZE;
	note_begin(o, NT_FILE, size);
	out_write(o, head, sizeof(head));
	for (i = 0; i < rec->mapping_count; i++) {
		const struct procrec_mapping *m = &rec->mappings[c->order[i]];

		if (!mapping_is_file(m))
			continue;
		triple[0] = m->start;
		triple[1] = m->end;
		triple[2] = m->offset / CORE_PAGE_SIZE;
		out_write(o, triple, sizeof(triple));
	}
	for (i = 0; i < rec->mapping_count; i++) {
		const struct procrec_mapping *m = &rec->mappings[c->order[i]];

		if (mapping_is_file(m))
			out_write(o, m->path, strlen(m->path) + 1);
	}
	out_pad(o, 4);
}

/* Every note, in the kernel's order (see the top of the file). */
static void
notes_emit(struct core_out *o, const struct core *c)
{
	const struct procrec_thread	*t;
	uint32_t			 i;

	t = &c->rec.threads[c->first_thread];
	note_prstatus(o, c, t);
	note_prpsinfo(o, &c->rec);
	note_emit(o, NT_AUXV, c->rec.auxv, c->rec.auxv_len);
	note_file(o, c);
	note_emit(o, NT_PRFPREG, t->fpregs, sizeof(t->fpregs));
	for (i = 0; i < c->rec.thread_count; i++) {
		if (i == c->first_thread)
			continue;
		t = &c->rec.threads[i];
		note_prstatus(o, c, t);
		note_emit(o, NT_PRFPREG, t->fpregs, sizeof(t->fpregs));
	}
}

/* ---- planning: check the record against the snapshot, place everything -- */

static int
mapping_compare(const void *a, const void *b, void *arg)
{
	const struct procrec	*rec = arg;
	uint64_t		 x = rec->mappings[*(const uint32_t *)a].start;
	uint64_t		 y = rec->mappings[*(const uint32_t *)b].start;

	return x < y ? -1 : x > y;
}

/* Does the core carry m's bytes? */
static int
mapping_saved(const struct procrec_mapping *m)
{
	return m->state == PROCREC_LIVE || m->state == PROCREC_STOPPED;
}

/*
 * Check one mapping: page-aligned, not overlapping the one before it, and
 * if saved, a region of the snapshot exactly its size at its address.
 */
static int
plan_mapping(struct core *c, const struct procrec_mapping *m,
    const struct procrec_mapping *prev)
{
	struct snap_file_region	r;
	unsigned long long	s = m->start, e = m->end;

	if (s % CORE_PAGE_SIZE != 0 || e % CORE_PAGE_SIZE != 0 || e <= s)
		return core_fail(c, EBADMSG, "mapping %llx-%llx in the process "
		    "record is not a page-aligned range", s, e);
	if (prev != NULL && prev->end > s)
		return core_fail(c, EBADMSG, "mappings %llx-%llx and "
		    "%llx-%llx in the process record overlap",
		    (unsigned long long)prev->start,
		    (unsigned long long)prev->end, s, e);
	if (!mapping_saved(m))
		return 0;
	if (m->region < 0 || snap_file_region(c->f, (uint32_t)m->region,
	    &r) == -1)
		return core_fail(c, EBADMSG, "mapping %llx-%llx (%s) is %s but "
		    "the snapshot has no region %d for it", s, e, m->path,
		    procrec_state_name(m->state), m->region);
	if (r.start != s || r.length != e - s)
		return core_fail(c, EBADMSG, "mapping %llx-%llx: its region %d "
		    "covers %llx-%llx instead", s, e, m->region,
		    (unsigned long long)r.start,
		    (unsigned long long)(r.start + r.length));
	if (e - s > (uint64_t)INT64_MAX - c->file_size)
		return core_fail(c, EFBIG, "the core would be larger than a "
		    "file can be");
	c->file_size += e - s;
	return 0;
}

/* Choose the main thread: the one whose tid is the pid, else the first. */
static void
plan_threads(struct core *c)
{
	c->first_thread = 0;
	for (uint32_t i = 0; i < c->rec.thread_count; i++) {
		if (c->rec.threads[i].tid == c->rec.pid) {
			c->first_thread = i;
			return;
		}
	}
}

static int
plan(struct core *c)
{
	struct core_out	*count;
	uint64_t	 headers;
	uint32_t	 i;

	if ((c->order = calloc(c->rec.mapping_count + 1, sizeof(*c->order)))
	    == NULL || (count = calloc(1, sizeof(*count))) == NULL)
		return core_fail(c, ENOMEM, "out of memory");
	for (i = 0; i < c->rec.mapping_count; i++)
		c->order[i] = i;
	qsort_r(c->order, c->rec.mapping_count, sizeof(*c->order),
	    mapping_compare, &c->rec);
	plan_threads(c);
	c->phnum = c->rec.mapping_count + 1;

	headers = sizeof(Elf64_Ehdr) + (uint64_t)c->phnum * sizeof(Elf64_Phdr);
	if (c->phnum >= PN_XNUM)
		headers += sizeof(Elf64_Shdr);
	c->notes_off = (headers + 3) & ~3ULL;
	count->fd = -1;
	notes_emit(count, c);
	c->notes_size = count->off;
	free(count);
	c->data_off = (c->notes_off + c->notes_size + CORE_PAGE_SIZE - 1) &
	    ~(CORE_PAGE_SIZE - 1);
	c->file_size = c->data_off;
	for (i = 0; i < c->rec.mapping_count; i++) {
		if (plan_mapping(c, &c->rec.mappings[c->order[i]], i == 0 ?
		    NULL : &c->rec.mappings[c->order[i - 1]]) == -1)
			return -1;
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

static void
headers_emit(struct core_out *o, const struct core *c)
{
	Elf64_Ehdr	eh;
	Elf64_Phdr	ph;
	Elf64_Shdr	sh;
	uint64_t	off = c->data_off;

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = c->phnum < PN_XNUM ? c->phnum : PN_XNUM;
	if (c->phnum >= PN_XNUM) {
		eh.e_shoff = sizeof(eh) + (uint64_t)c->phnum * sizeof(ph);
		eh.e_shentsize = sizeof(sh);
		eh.e_shnum = 1;
	}
	out_write(o, &eh, sizeof(eh));

	memset(&ph, 0, sizeof(ph));
	ph.p_type = PT_NOTE;
	ph.p_offset = c->notes_off;
	ph.p_filesz = c->notes_size;
	ph.p_align = 4;
	out_write(o, &ph, sizeof(ph));
	for (uint32_t i = 0; i < c->rec.mapping_count; i++) {
		const struct procrec_mapping *m = &c->rec.mappings[c->order[i]];

		memset(&ph, 0, sizeof(ph));
		ph.p_type = PT_LOAD;
		ph.p_offset = off;
		ph.p_vaddr = m->start;
		ph.p_memsz = m->end - m->start;
		ph.p_filesz = mapping_saved(m) ? ph.p_memsz : 0;
		ph.p_flags = (m->prot & PROT_READ ? PF_R : 0) |
		    (m->prot & PROT_WRITE ? PF_W : 0) |
		    (m->prot & PROT_EXEC ? PF_X : 0);
		ph.p_align = CORE_PAGE_SIZE;
		out_write(o, &ph, sizeof(ph));
		off += ph.p_filesz;
	}
	if (c->phnum >= PN_XNUM) {
		memset(&sh, 0, sizeof(sh));
		sh.sh_info = c->phnum;	/* the real e_phnum, as the kernel */
		out_write(o, &sh, sizeof(sh));
	}
	out_pad(o, 4);
}

static int
page_is_zero(const unsigned char *p)
{
	const uint64_t	*w = (const uint64_t *)(const void *)p;

	for (size_t i = 0; i < CORE_PAGE_SIZE / sizeof(*w); i++)
		if (w[i] != 0)
			return 0;
	return 1;
}

/* Write npages pages of buf at off, leaving zero pages as holes. */
static int
data_write(struct core *c, int fd, const char *tmp, const unsigned char *buf,
    uint64_t npages, uint64_t off)
{
	uint64_t	i = 0, run;

	while (i < npages) {
		if (page_is_zero(buf + i * CORE_PAGE_SIZE)) {
			i++;
			continue;
		}
		for (run = 1; i + run < npages &&
		    !page_is_zero(buf + (i + run) * CORE_PAGE_SIZE); run++)
			;
		if (ioutil_write_all(fd, buf + i * CORE_PAGE_SIZE,
		    run * CORE_PAGE_SIZE, (off_t)(off + i * CORE_PAGE_SIZE))
		    == -1)
			return core_fail(c, errno, "%s: write: %s", tmp,
			    strerror(errno));
		i += run;
	}
	return 0;
}

/* A saved mapping's bytes at off, CORE_READ_PAGES at a time. */
static int
mapping_write(struct core *c, int fd, const char *tmp,
    const struct procrec_mapping *m, uint64_t off, unsigned char *buf)
{
	uint64_t	pages = (m->end - m->start) / CORE_PAGE_SIZE;
	uint64_t	done, n, lost;

	for (done = 0; done < pages; done += n) {
		n = pages - done < CORE_READ_PAGES ? pages - done :
		    CORE_READ_PAGES;
		if (snap_file_read(c->f, (uint32_t)m->region, done, n, buf,
		    &lost) == -1)
			return core_fail(c, errno, "mapping %llx-%llx (region "
			    "%d): %s", (unsigned long long)m->start,
			    (unsigned long long)m->end, m->region,
			    snap_strerror(NULL));
		c->st->pages_lost += lost;
		if (data_write(c, fd, tmp, buf, n, off + done *
		    CORE_PAGE_SIZE) == -1)
			return -1;
	}
	c->st->mappings_saved++;
	c->st->bytes_saved += m->end - m->start;
	return 0;
}

/* Headers, notes, every saved mapping's bytes, the full size: the file. */
static int
core_emit(struct core *c, int fd, const char *tmp)
{
	struct core_out	*o;
	unsigned char	*buf;
	uint64_t	 off = c->data_off;
	int		 error;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return core_fail(c, ENOMEM, "out of memory");
	o->fd = fd;
	headers_emit(o, c);
	if (o->off != c->notes_off)
		abort();	/* plan() placed the notes right here */
	notes_emit(o, c);
	out_flush(o);
	error = o->error;
	free(o);
	if (error != 0)
		return core_fail(c, error, "%s: write: %s", tmp,
		    strerror(error));
	if ((buf = malloc(CORE_READ_PAGES * CORE_PAGE_SIZE)) == NULL)
		return core_fail(c, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < c->rec.mapping_count; i++) {
		const struct procrec_mapping *m = &c->rec.mappings[c->order[i]];

		if (!mapping_saved(m))
			continue;
		if (mapping_write(c, fd, tmp, m, off, buf) == -1) {
			free(buf);
			return -1;
		}
		off += m->end - m->start;
	}
	free(buf);
	/* The holes at the end (zero pages last) still count in the size. */
	if (ftruncate(fd, (off_t)c->file_size) == -1 || fsync(fd) == -1)
		return core_fail(c, errno, "%s: %s", tmp, strerror(errno));
	return 0;
}

/* Read and check the record: a core needs threads. */
static int
core_load(struct core *c)
{
	int	rc;

	if ((rc = snap_file_process(c->f, &c->rec)) == -1)
		return core_fail(c, errno, "%s", snap_strerror(NULL));
	if (rc == 0 || c->rec.thread_count == 0)
		return core_fail(c, EINVAL, "taken without attach: no threads "
		    "to write a core from");
	if (c->rec.machine != EM_X86_64)
		return core_fail(c, ENOTSUP, "the process record is for ELF "
		    "machine %u; cores are written for x86_64 (%u) only",
		    c->rec.machine, EM_X86_64);
	c->st->threads = c->rec.thread_count;
	c->st->mappings = c->rec.mapping_count;
	return 0;
}

int
core_write(struct snap_file *f, const char *path, struct core_stats *st,
    char *err, size_t errlen)
{
	struct core	 c;
	char		*tmp = NULL;
	int		 fd = -1, rc = -1, created = 0, saved;

	memset(&c, 0, sizeof(c));
	memset(st, 0, sizeof(*st));
	c.f = f;
	c.st = st;
	c.err = err;
	c.errlen = errlen;
	if (core_load(&c) == -1 || plan(&c) == -1)
		goto out;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) == -1) {
		tmp = NULL;
		core_fail(&c, ENOMEM, "out of memory");
		goto out;
	}
	/* Mode 0600 whatever the umask: the core is the process's memory. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		core_fail(&c, errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	created = 1;
	if (core_emit(&c, fd, tmp) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		core_fail(&c, errno, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		core_fail(&c, errno, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (rc == -1 && created)
		unlink(tmp);
	free(tmp);
	free(c.order);
	procrec_free(&c.rec);
	errno = saved;
	return rc;
}
