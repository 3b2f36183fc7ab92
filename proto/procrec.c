/*
 * The process record's one encoder and one decoder: see procrec.h for the
 * layout and who calls them.
 *
 * The decoder reads untrusted bytes (a snapshot file anyone may have
 * crafted), so it checks in this order: the magic, the trailing crc32c
 * over everything else, then every count against its bound *and* against
 * the bytes still unread before anything is allocated.  A count only
 * sizes an allocation once the bytes it describes are known to be there,
 * so a record of len bytes never costs more than a small multiple of len
 * in memory, whatever it claims.  Strings may not hold NUL bytes, so what
 * a reader shows is exactly what was recorded.
 *
 * Nothing here logs, exits or keeps state: the daemon and the client
 * library both link it, and any thread may call it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "procrec.h"
#include "zsnap.h"

#define PROCREC_EM_X86_64	62	/* elf.h's EM_X86_64 */

/* Bytes of each fixed part, as laid out in procrec.h. */
#define PROCREC_HEAD_SIZE	(8 + 11 * 4 + 16 + 80)
#define PROCREC_THREAD_SIZE	(4 + 4 + 8 + 8 + PROCREC_GREGS * 8 + \
				    PROCREC_FPREGS_SIZE)
#define PROCREC_MAPPING_MIN	(5 * 8 + 4 * 4 + 2 + 2)	/* empty strings */

_Static_assert(sizeof(((struct procrec *)0)->comm) == 16, "comm is on disk");
_Static_assert(sizeof(((struct procrec *)0)->psargs) == 80,
    "psargs is on disk");

const char *
procrec_state_name(uint32_t state)
{
	switch (state) {
	case PROCREC_LIVE:
		return "live";
	case PROCREC_STOPPED:
		return "stopped";
	case PROCREC_SKIPPED:
		return "skipped";
	}
	return "unknown";
}

void
procrec_free(struct procrec *rec)
{
	if (rec == NULL)
		return;
	for (uint32_t i = 0; rec->mappings != NULL && i < rec->mapping_count;
	    i++) {
		free(rec->mappings[i].path);
		free(rec->mappings[i].reason);
	}
	free(rec->mappings);
	free(rec->threads);
	free(rec->auxv);
	memset(rec, 0, sizeof(*rec));
}

/* ---- encoding ------------------------------------------------------------ */

static size_t
procrec_strlen(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

/* The encoded size of rec, or 0 (errno EINVAL) if it is past a bound. */
static size_t
procrec_encoded_size(const struct procrec *rec)
{
	size_t	len;

	if (rec->thread_count > PROCREC_THREADS_MAX ||
	    rec->mapping_count > PROCREC_MAPPINGS_MAX ||
	    rec->auxv_len > PROCREC_AUXV_MAX ||
	    (rec->thread_count > 0 && rec->threads == NULL) ||
	    (rec->mapping_count > 0 && rec->mappings == NULL) ||
	    (rec->auxv_len > 0 && rec->auxv == NULL))
		goto invalid;
	len = PROCREC_HEAD_SIZE + (size_t)rec->thread_count *
	    PROCREC_THREAD_SIZE + rec->auxv_len + 4;
	for (uint32_t i = 0; i < rec->mapping_count; i++) {
		const struct procrec_mapping *m = &rec->mappings[i];
		size_t	path = procrec_strlen(m->path);
		size_t	reason = procrec_strlen(m->reason);

		if (path > PROCREC_PATH_MAX || reason > PROCREC_REASON_MAX ||
		    m->state > PROCREC_SKIPPED)
			goto invalid;
		len += PROCREC_MAPPING_MIN + path + reason;
	}
	return len;
invalid:
	errno = EINVAL;
	return 0;
}

static unsigned char *
put32(unsigned char *p, uint32_t v)
{
	zsnap_put32(p, v);
	return p + 4;
}

static unsigned char *
put64(unsigned char *p, uint64_t v)
{
	zsnap_put64(p, v);
	return p + 8;
}

/* A string as le16 length and bytes. */
static unsigned char *
put_string(unsigned char *p, const char *s)
{
	size_t	n = procrec_strlen(s);

	p[0] = (unsigned char)(n & 0xff);
	p[1] = (unsigned char)(n >> 8);
	if (n > 0)
		memcpy(p + 2, s, n);
	return p + 2 + n;
}

/* A NUL-padded fixed field, cut so it always ends in a NUL. */
static unsigned char *
put_field(unsigned char *p, const char *s, size_t size)
{
	memset(p, 0, size);
	memcpy(p, s, strnlen(s, size - 1));
	return p + size;
}

static unsigned char *
put_thread(unsigned char *p, const struct procrec_thread *t)
{
	p = put32(p, t->tid);
	p = put32(p, t->flags);
	p = put64(p, t->sigpend);
	p = put64(p, t->sigblk);
	for (int r = 0; r < PROCREC_GREGS; r++)
		p = put64(p, t->regs[r]);
	memcpy(p, t->fpregs, PROCREC_FPREGS_SIZE);
	return p + PROCREC_FPREGS_SIZE;
}

static unsigned char *
put_mapping(unsigned char *p, const struct procrec_mapping *m)
{
	p = put64(p, m->start);
	p = put64(p, m->end);
	p = put64(p, m->offset);
	p = put64(p, m->dev);
	p = put64(p, m->inode);
	p = put32(p, m->prot);
	p = put32(p, m->flags);
	p = put32(p, m->state);
	p = put32(p, (uint32_t)m->region);
	p = put_string(p, m->path);
	return put_string(p, m->reason);
}

int
procrec_encode(const struct procrec *rec, uint8_t **buf, size_t *len)
{
	unsigned char	*b, *p;
	size_t		 size;

	if ((size = procrec_encoded_size(rec)) == 0)
		return -1;
	if ((b = malloc(size)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	memcpy(b, PROCREC_MAGIC, 8);
	p = put32(b + 8, rec->machine);
	p = put32(p, rec->thread_count);
	p = put32(p, rec->mapping_count);
	p = put32(p, rec->auxv_len);
	p = put32(p, rec->pid);
	p = put32(p, rec->ppid);
	p = put32(p, rec->pgrp);
	p = put32(p, rec->sid);
	p = put32(p, rec->uid);
	p = put32(p, rec->gid);
	p = put32(p, rec->flags);
	p = put_field(p, rec->comm, sizeof(rec->comm));
	p = put_field(p, rec->psargs, sizeof(rec->psargs));
	for (uint32_t i = 0; i < rec->thread_count; i++)
		p = put_thread(p, &rec->threads[i]);
	for (uint32_t i = 0; i < rec->mapping_count; i++)
		p = put_mapping(p, &rec->mappings[i]);
	if (rec->auxv_len > 0)
		memcpy(p, rec->auxv, rec->auxv_len);
	p += rec->auxv_len;
	put32(p, crc32c(0, b, (size_t)(p - b)));
	*buf = b;
	*len = size;
	return 0;
}

/* ---- decoding ------------------------------------------------------------ */

/* A bounded cursor over the record's bytes. */
struct procrec_in {
	const unsigned char	*p;
	size_t			 left;		/* before the crc */
	char			*why;
	size_t			 whylen;
};

static int
procrec_fail(struct procrec_in *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
procrec_fail(struct procrec_in *in, const char *fmt, ...)
{
	va_list	ap;

	if (in->why != NULL && in->whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(in->why, in->whylen, fmt, ap);
		va_end(ap);
	}
	errno = EBADMSG;
	return -1;
}

/* Take n bytes, or -1 if fewer are left. */
static const unsigned char *
take(struct procrec_in *in, size_t n)
{
	const unsigned char *p = in->p;

	if (n > in->left)
		return NULL;
	in->p += n;
	in->left -= n;
	return p;
}

static uint32_t
get32(const unsigned char **p)
{
	uint32_t v = zsnap_get32(*p);

	*p += 4;
	return v;
}

static uint64_t
get64(const unsigned char **p)
{
	uint64_t v = zsnap_get64(*p);

	*p += 8;
	return v;
}

/* A le16-counted string of at most max bytes, without NUL, malloc'ed. */
static int
get_string(struct procrec_in *in, size_t max, char **out, uint32_t i,
    const char *what)
{
	const unsigned char	*p;
	size_t			 n;

	if ((p = take(in, 2)) == NULL)
		return procrec_fail(in, "mapping %u: truncated", i);
	n = (size_t)p[0] | (size_t)p[1] << 8;
	if (n > max)
		return procrec_fail(in, "mapping %u: %s of %zu bytes (at most "
		    "%zu)", i, what, n, max);
	if ((p = take(in, n)) == NULL)
		return procrec_fail(in, "mapping %u: truncated", i);
	if (memchr(p, '\0', n) != NULL)
		return procrec_fail(in, "mapping %u: %s holds a NUL byte", i,
		    what);
	if ((*out = malloc(n + 1)) == NULL) {
		procrec_fail(in, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	memcpy(*out, p, n);
	(*out)[n] = '\0';
	return 0;
}

static int
get_head(struct procrec_in *in, struct procrec *rec)
{
	const unsigned char *p = take(in, PROCREC_HEAD_SIZE);

	if (p == NULL)
		return procrec_fail(in, "truncated: %zu bytes", in->left);
	if (memcmp(p, PROCREC_MAGIC, 8) != 0)
		return procrec_fail(in, "bad magic");
	p += 8;
	rec->machine = get32(&p);
	rec->thread_count = get32(&p);
	rec->mapping_count = get32(&p);
	rec->auxv_len = get32(&p);
	rec->pid = get32(&p);
	rec->ppid = get32(&p);
	rec->pgrp = get32(&p);
	rec->sid = get32(&p);
	rec->uid = get32(&p);
	rec->gid = get32(&p);
	rec->flags = get32(&p);
	memcpy(rec->comm, p, sizeof(rec->comm));
	memcpy(rec->psargs, p + sizeof(rec->comm), sizeof(rec->psargs));
	if (rec->machine != PROCREC_EM_X86_64)
		return procrec_fail(in, "machine %u, this reader knows %u "
		    "(x86_64)", rec->machine, PROCREC_EM_X86_64);
	if (rec->comm[sizeof(rec->comm) - 1] != '\0' ||
	    rec->psargs[sizeof(rec->psargs) - 1] != '\0')
		return procrec_fail(in, "comm or psargs not NUL-terminated");
	return 0;
}

/*
 * An array of n elements of elem bytes, each taking at least min bytes of
 * the record: n is checked against max and against the bytes left before
 * anything is allocated, so what is allocated is bounded by what is there.
 */
static int
get_array(struct procrec_in *in, uint32_t n, uint32_t max, size_t min,
    size_t elem, const char *what, void **out)
{
	if (n > max || n > in->left / min)
		return procrec_fail(in, "%u %s: %s", n, what,
		    n > max ? "too many" : "truncated");
	if (n > 0 && (*out = calloc(n, elem)) == NULL) {
		procrec_fail(in, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int
get_threads(struct procrec_in *in, struct procrec *rec)
{
	uint32_t	n = rec->thread_count;

	if (get_array(in, n, PROCREC_THREADS_MAX, PROCREC_THREAD_SIZE,
	    sizeof(*rec->threads), "threads", (void **)&rec->threads) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		struct procrec_thread	*t = &rec->threads[i];
		const unsigned char	*p = take(in, PROCREC_THREAD_SIZE);

		t->tid = get32(&p);
		t->flags = get32(&p);
		t->sigpend = get64(&p);
		t->sigblk = get64(&p);
		for (int r = 0; r < PROCREC_GREGS; r++)
			t->regs[r] = get64(&p);
		memcpy(t->fpregs, p, PROCREC_FPREGS_SIZE);
	}
	return 0;
}

static int
get_mapping(struct procrec_in *in, struct procrec_mapping *m, uint32_t i)
{
	const unsigned char *p = take(in, PROCREC_MAPPING_MIN - 4);

	if (p == NULL)
		return procrec_fail(in, "mapping %u: truncated", i);
	m->start = get64(&p);
	m->end = get64(&p);
	m->offset = get64(&p);
	m->dev = get64(&p);
	m->inode = get64(&p);
	m->prot = get32(&p);
	m->flags = get32(&p);
	m->state = get32(&p);
	m->region = (int32_t)get32(&p);
	if (m->start >= m->end)
		return procrec_fail(in, "mapping %u: start %#llx not below end "
		    "%#llx", i, (unsigned long long)m->start,
		    (unsigned long long)m->end);
	if (m->state > PROCREC_SKIPPED)
		return procrec_fail(in, "mapping %u: unknown state %u", i,
		    m->state);
	if (m->region < -1)
		return procrec_fail(in, "mapping %u: region %d", i, m->region);
	if (get_string(in, PROCREC_PATH_MAX, &m->path, i, "path") == -1 ||
	    get_string(in, PROCREC_REASON_MAX, &m->reason, i, "reason") == -1)
		return -1;
	return 0;
}

static int
get_mappings(struct procrec_in *in, struct procrec *rec)
{
	uint32_t	n = rec->mapping_count;

	if (get_array(in, n, PROCREC_MAPPINGS_MAX, PROCREC_MAPPING_MIN,
	    sizeof(*rec->mappings), "mappings", (void **)&rec->mappings) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (get_mapping(in, &rec->mappings[i], i) == -1)
			return -1;
	return 0;
}

static int
get_auxv(struct procrec_in *in, struct procrec *rec)
{
	const unsigned char *p;

	if (rec->auxv_len > PROCREC_AUXV_MAX)
		return procrec_fail(in, "auxv of %u bytes (at most %u)",
		    rec->auxv_len, PROCREC_AUXV_MAX);
	if (rec->auxv_len != in->left)
		return procrec_fail(in, "auxv of %u bytes, %zu left: %s",
		    rec->auxv_len, in->left, rec->auxv_len > in->left ?
		    "truncated" : "trailing bytes");
	if (rec->auxv_len == 0)
		return 0;
	p = take(in, rec->auxv_len);
	if ((rec->auxv = malloc(rec->auxv_len)) == NULL) {
		procrec_fail(in, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	memcpy(rec->auxv, p, rec->auxv_len);
	return 0;
}

int
procrec_decode(const uint8_t *buf, size_t len, struct procrec *rec,
    char *why, size_t whylen)
{
	struct procrec_in	in = { buf, 0, why, whylen };
	int			saved;

	memset(rec, 0, sizeof(*rec));
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (buf == NULL || len < PROCREC_HEAD_SIZE + 4)
		return procrec_fail(&in, "truncated: %zu bytes", len);
	if (memcmp(buf, PROCREC_MAGIC, 8) != 0)
		return procrec_fail(&in, "bad magic");
	if (crc32c(0, buf, len - 4) != zsnap_get32(buf + len - 4))
		return procrec_fail(&in, "bad crc");
	in.left = len - 4;
	if (get_head(&in, rec) == -1 || get_threads(&in, rec) == -1 ||
	    get_mappings(&in, rec) == -1 || get_auxv(&in, rec) == -1) {
		saved = errno;
		procrec_free(rec);
		errno = saved;
		return -1;
	}
	return 0;
}
