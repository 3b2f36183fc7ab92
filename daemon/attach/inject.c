/*
 * System calls run inside a stopped process through one of its threads,
 * safe against snapd's death at any instant (inject.h says how).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"

/*
 * The blob, x86_64 (assembled from this source; offsets on the left):
 *
 *	00 entry:	syscall
 *	02		mov	dword [r12], eax	; result into its slot
 *	06 tail:	test	r14, r14		; r14: slots left to close
 *	09		jz	restore
 *	0b		mov	rax, [r13]		; r13: next slot's address
 *	0f		movsxd	rdi, dword [rax]
 *	12		mov	eax, 3			; close(slot)
 *	17		syscall
 *	19		add	r13, 8
 *	1d		dec	r14
 *	20		jmp	tail
 *	22 restore:	mov	rsp, r15		; r15: the save area
 *	25		pop r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8,
 *			    rax, rcx, rdx, rsi, rdi
 *	3c		popfq
 *	3d		mov	rsp, [rsp]
 *	41		jmp	[rip + 0]		; to the thread's own rip
 *	47 ripslot:	.quad	rip
 *
 * close(-1) fails harmlessly, so slots never filled cost nothing.  A
 * signal that arrives while the blob runs is delivered on the stack below
 * the scratch area (rsp is its base) and returns into the blob.
 */
static const uint8_t inject_blob[] = {
	0x0f, 0x05, 0x41, 0x89, 0x04, 0x24, 0x4d, 0x85, 0xf6, 0x74, 0x17, 0x49,
	0x8b, 0x45, 0x00, 0x48, 0x63, 0x38, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x0f,
	0x05, 0x49, 0x83, 0xc5, 0x08, 0x49, 0xff, 0xce, 0xeb, 0xe4, 0x4c, 0x89,
	0xfc, 0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0x41,
	0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58, 0x58, 0x59, 0x5a, 0x5e, 0x5f,
	0x9d, 0x48, 0x8b, 0x24, 0x24, 0xff, 0x25, 0x00, 0x00, 0x00, 0x00,
};
#define BLOB_TAIL	0x06
#define BLOB_RIPSLOT	0x47
#define BLOB_SIZE	(BLOB_RIPSLOT + 8)
_Static_assert(sizeof(inject_blob) == BLOB_RIPSLOT, "blob layout");
_Static_assert(BLOB_SIZE <= INJECT_CODE_MAX, "blob fits");

/* The scratch area, offsets from its base (the blob's rsp). */
#define SCR_SAVE	0x000	/* 17 qwords, in the blob's pop order */
#define SCR_SLOTS	0x100	/* INJECT_FDS ints */
#define SCR_LIST	0x140	/* INJECT_FDS slot addresses, for the tail */
#define SCR_DUMMY	0x180	/* result slot of a syscall returning no fd */
#define SCR_BUF		0x200	/* buffers for the caller */
#define RED_ZONE	128

#define ERESTARTSYS_		512
#define ERESTARTNOINTR_		513
#define ERESTARTNOHAND_		514
#define ERESTART_RESTARTBLOCK_	516
#define NR_restart_syscall	219

int
inject_peek(struct inject *in, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = pread(in->mem, buf, len, (off_t)addr);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

int
inject_poke(struct inject *in, uint64_t addr, const void *buf, size_t len)
{
	ssize_t n = pwrite(in->mem, buf, len, (off_t)addr);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

uint64_t
inject_slot(const struct inject *in, unsigned i)
{
	return in->slot_at[i];
}

int
inject_track(struct inject *in, unsigned i, uint64_t addr)
{
	in->slot_at[i] = addr;
	return inject_poke(in, in->scratch + SCR_LIST + 8 * (uint64_t)i, &addr,
	    sizeof(addr));
}

uint64_t
inject_buf(const struct inject *in, unsigned off)
{
	return in->scratch + SCR_BUF + off;
}

/*
 * The registers the thread must resume with: as it stopped, except that a
 * system call it was stopped in is restarted the way the kernel would
 * have on its way back to user space (orig_rax -1 then says "no syscall",
 * so nothing restarts it twice).
 */
static void
inject_resume_regs(const struct user_regs_struct *r,
    struct user_regs_struct *out)
{
	*out = *r;
	if ((long long)r->orig_rax >= 0) {
		switch ((long long)r->rax) {
		case -ERESTARTSYS_:
		case -ERESTARTNOINTR_:
		case -ERESTARTNOHAND_:
			out->rax = r->orig_rax;
			out->rip -= 2;
			break;
		case -ERESTART_RESTARTBLOCK_:
			out->rax = NR_restart_syscall;
			out->rip -= 2;
			break;
		}
	}
	out->orig_rax = (unsigned long long)-1;
}

/*
 * Is [addr, addr + len) padding after the end of an executable segment of
 * the ELF object whose first page is mapped at base?  Returns the usable
 * address in *code, 0 if found, -1 otherwise.
 */
static int
inject_elf_padding(struct inject *in, uint64_t base, uint64_t xstart,
    uint64_t xend, uint64_t *code)
{
	Elf64_Ehdr	eh;
	Elf64_Phdr	ph[64];
	uint64_t	bias = 0, first_vaddr = UINT64_MAX;

	if (inject_peek(in, base, &eh, sizeof(eh)) == -1 ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > 64 ||
	    inject_peek(in, base + eh.e_phoff, ph, eh.e_phnum * sizeof(ph[0]))
	    == -1)
		return -1;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first_vaddr)
			first_vaddr = ph[i].p_vaddr;
	if (first_vaddr == UINT64_MAX)
		return -1;
	if (eh.e_type == ET_DYN)
		bias = base - (first_vaddr & ~4095ULL);
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		uint64_t end, page_end, at;
		uint8_t  bytes[INJECT_CODE_MAX];
		int	 zero = 1;

		if (ph[i].p_type != PT_LOAD || !(ph[i].p_flags & PF_X))
			continue;
		end = bias + ph[i].p_vaddr + ph[i].p_filesz;
		page_end = (end + 4095) & ~4095ULL;
		at = (end + 15) & ~15ULL;
		if (end < xstart || page_end > xend ||
		    page_end - at < INJECT_CODE_MAX ||
		    inject_peek(in, at, bytes, sizeof(bytes)) == -1)
			continue;
		for (size_t k = 0; k < sizeof(bytes); k++)
			zero &= bytes[k] == 0;
		if (zero) {
			*code = at;
			return 0;
		}
	}
	return -1;
}

/*
 * Find padding for the blob in one of the process's executable file
 * mappings.  0 with in->code set, or -1 with why.
 */
static int
inject_find_code(struct inject *in, char *why, size_t whylen)
{
	char		 path[64], line[4352], name[4096];
	char		 first_name[4096] = "";
	uint64_t	 first_start = 0;
	FILE		*f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)in->tr->pid);
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(why, whylen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long	start, end, off;
		char			perms[8];

		name[0] = '\0';
		if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095[^\n]",
		    &start, &end, perms, &off, name) < 4 || name[0] != '/')
			continue;
		if (off == 0) {
			first_start = start;
			snprintf(first_name, sizeof(first_name), "%s", name);
		}
		if (perms[2] != 'x' || strcmp(name, first_name) != 0)
			continue;
		if (inject_elf_padding(in, first_start, start, end,
		    &in->code) == 0) {
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	snprintf(why, whylen, "no room for the injected code in process %d: "
	    "none of its executable file mappings has %d bytes of padding "
	    "after its code", (int)in->tr->pid, INJECT_CODE_MAX);
	return -1;
}

/* The save area: the resume registers in the blob's pop order, then rsp. */
static void
inject_save_area(const struct user_regs_struct *r, uint64_t q[17])
{
	const unsigned long long v[17] = {
		r->r15, r->r14, r->r13, r->r12, r->rbp, r->rbx, r->r11,
		r->r10, r->r9, r->r8, r->rax, r->rcx, r->rdx, r->rsi, r->rdi,
		r->eflags, r->rsp,
	};

	for (int i = 0; i < 17; i++)
		q[i] = v[i];
}

/* Pick the thread: no signal on its way, not stopped by a stop signal,
 * best not inside a system call; its stack must hold the scratch area. */
static int
inject_pick_thread(struct inject *in)
{
	struct tracer	*tr = in->tr;
	int		 best = -1, score = -1;

	for (unsigned i = 0; i < tr->n; i++) {
		struct tracee	*t = &tr->t[i];
		uint64_t	 base;
		int		 s;

		if (t->signal != 0 || t->regs.rsp < RED_ZONE + INJECT_SCRATCH)
			continue;
		base = (t->regs.rsp - RED_ZONE - INJECT_SCRATCH) & ~15ULL;
		if (inject_peek(in, base, in->saved_scratch,
		    sizeof(in->saved_scratch)) == -1)
			continue;
		s = ((long long)t->regs.orig_rax < 0) * 2 + !t->group_stop;
		if (s > score) {
			score = s;
			best = (int)i;
		}
	}
	if (best == -1)
		return -1;
	in->t = &tr->t[best];
	in->scratch = (in->t->regs.rsp - RED_ZONE - INJECT_SCRATCH) & ~15ULL;
	return inject_peek(in, in->scratch, in->saved_scratch,
	    sizeof(in->saved_scratch));
}

/* Write the scratch area and the blob into the process. */
static int
inject_install(struct inject *in)
{
	uint8_t		scr[SCR_BUF];
	uint8_t		code[BLOB_SIZE];
	uint64_t	save[17], rip = in->resume.rip;
	int32_t		minus1 = -1;

	memcpy(scr, in->saved_scratch, sizeof(scr));
	inject_save_area(&in->resume, save);
	memcpy(scr + SCR_SAVE, save, sizeof(save));
	for (unsigned i = 0; i < INJECT_FDS; i++) {
		uint64_t a = in->scratch + SCR_SLOTS + 4 * (uint64_t)i;

		in->slot_at[i] = a;
		memcpy(scr + SCR_SLOTS + 4 * i, &minus1, 4);
		memcpy(scr + SCR_LIST + 8 * i, &a, 8);
	}
	memcpy(scr + SCR_DUMMY, &minus1, 4);
	memcpy(code, inject_blob, sizeof(inject_blob));
	memcpy(code + BLOB_RIPSLOT, &rip, 8);
	if (inject_poke(in, in->scratch, scr, sizeof(scr)) == -1)
		return -1;
	return inject_poke(in, in->code, code, sizeof(code));
}

int
inject_begin(struct inject *in, struct tracer *tr, char *why, size_t whylen)
{
	char path[64];

	memset(in, 0, sizeof(*in));
	in->tr = tr;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)tr->pid);
	if ((in->mem = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (inject_find_code(in, why, whylen) == -1)
		goto fail;
	if (inject_peek(in, in->code, in->saved_code, sizeof(in->saved_code))
	    == -1 || inject_pick_thread(in) == -1) {
		snprintf(why, whylen, "process %d: no thread to inject "
		    "through (each has a signal on its way or no stack room)",
		    (int)tr->pid);
		goto fail;
	}
	inject_resume_regs(&in->t->regs, &in->resume);
	if (inject_install(in) == -1) {
		snprintf(why, whylen, "write the injected code into process "
		    "%d: %s", (int)tr->pid, strerror(errno));
		(void)inject_poke(in, in->code, in->saved_code, BLOB_SIZE);
		goto fail;
	}
	return 0;
fail:
	close(in->mem);
	in->mem = -1;
	return -1;
}

/*
 * Resume the thread to its next syscall-stop of the wanted kind (entry or
 * exit).  Signals that come on the way are held back (re-raised once the
 * process is released); stops for other reasons are passed over.
 */
static int
inject_step(struct inject *in, unsigned char want)
{
	struct __ptrace_syscall_info	info;
	pid_t				tid = in->t->tid;
	int				status;

	for (;;) {
		if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) == -1 ||
		    tracer_wait(tid, &status) == -1)
			return -1;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			if (ptrace(PTRACE_GET_SYSCALL_INFO, tid,
			    (void *)sizeof(info), &info) == -1)
				return -1;
			if (info.op == want)
				return 0;
			errno = EPROTO;
			return -1;
		}
		if ((status >> 16) == 0 && WSTOPSIG(status) > 0 &&
		    WSTOPSIG(status) <= 64)
			in->resignal |= 1ULL << (WSTOPSIG(status) - 1);
	}
}

long
inject_syscall(struct inject *in, long nr, const long args[6], int fd_slot,
    unsigned nslots, char *why, size_t whylen)
{
	struct user_regs_struct	r = in->resume;
	pid_t			tid = in->t->tid;
	long			res;
	int32_t			fd;

	r.rip = in->code;
	r.rax = (unsigned long long)nr;
	r.rdi = (unsigned long long)args[0];
	r.rsi = (unsigned long long)args[1];
	r.rdx = (unsigned long long)args[2];
	r.r10 = (unsigned long long)args[3];
	r.r8 = (unsigned long long)args[4];
	r.r9 = (unsigned long long)args[5];
	r.r12 = fd_slot >= 0 ? inject_slot(in, (unsigned)fd_slot) :
	    in->scratch + SCR_DUMMY;
	r.r13 = in->scratch + SCR_LIST;
	r.r14 = nslots;
	r.r15 = in->scratch + SCR_SAVE;
	r.rsp = in->scratch;
	r.orig_rax = (unsigned long long)-1;
	if (nslots > in->nfds)
		in->nfds = nslots;
	in->stepped = 1;
	if (ptrace(PTRACE_SETREGS, tid, NULL, &r) == -1 ||
	    inject_step(in, PTRACE_SYSCALL_INFO_ENTRY) == -1 ||
	    inject_step(in, PTRACE_SYSCALL_INFO_EXIT) == -1 ||
	    ptrace(PTRACE_GETREGS, tid, NULL, &r) == -1) {
		snprintf(why, whylen, "inject syscall %ld into thread %d: %s",
		    nr, (int)tid, strerror(errno));
		return INJECT_FAILED;
	}
	res = (long)r.rax;
	if (fd_slot >= 0) {
		/* What the blob's store would have done. */
		fd = res >= 0 ? (int32_t)res : -1;
		if (inject_poke(in, inject_slot(in, (unsigned)fd_slot), &fd,
		    sizeof(fd)) == -1) {
			snprintf(why, whylen, "record descriptor %ld of "
			    "process %d: %s", res, (int)in->tr->pid,
			    strerror(errno));
			return INJECT_FAILED;
		}
	}
	return res;
}

/* Run the blob's tail: nfds close() calls, stepped one by one. */
static int
inject_run_tail(struct inject *in)
{
	struct user_regs_struct	r;
	pid_t			tid = in->t->tid;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &r) == -1)
		return -1;
	r.rip = in->code + BLOB_TAIL;
	r.r13 = in->scratch + SCR_LIST;
	r.r14 = in->nfds;
	r.r15 = in->scratch + SCR_SAVE;
	r.rsp = in->scratch;
	r.orig_rax = (unsigned long long)-1;
	if (ptrace(PTRACE_SETREGS, tid, NULL, &r) == -1)
		return -1;
	for (unsigned i = 0; i < in->nfds; i++) {
		if (inject_step(in, PTRACE_SYSCALL_INFO_ENTRY) == -1)
			return -1;
		if (i == 0 && in->pause != NULL)
			in->pause(in->pause_arg, "closing");
		if (inject_step(in, PTRACE_SYSCALL_INFO_EXIT) == -1)
			return -1;
	}
	return 0;
}

int
inject_end(struct inject *in, char *why, size_t whylen)
{
	pid_t	tid = in->t != NULL ? in->t->tid : 0;
	int	rc = 0;

	if (in->mem == -1)
		return 0;
	if (in->stepped) {
		if (in->nfds > 0 && inject_run_tail(in) == -1) {
			snprintf(why, whylen, "close the injected descriptors "
			    "in thread %d: %s", (int)tid, strerror(errno));
			rc = -1;
		}
		if (ptrace(PTRACE_SETREGS, tid, NULL, &in->resume) == -1 &&
		    rc == 0) {
			snprintf(why, whylen, "restore the registers of thread "
			    "%d: %s", (int)tid, strerror(errno));
			rc = -1;
		}
	}
	if (in->t != NULL && inject_poke(in, in->scratch, in->saved_scratch,
	    sizeof(in->saved_scratch)) == -1 && rc == 0) {
		snprintf(why, whylen, "restore the stack of thread %d: %s",
		    (int)tid, strerror(errno));
		rc = -1;
	}
	if (inject_poke(in, in->code, in->saved_code, BLOB_SIZE) == -1 &&
	    rc == 0) {
		snprintf(why, whylen, "restore the code padding of process "
		    "%d: %s", (int)in->tr->pid, strerror(errno));
		rc = -1;
	}
	close(in->mem);
	in->mem = -1;
	return rc;
}
