/*
 * The byte-stream output of the streamed snapshot formats, in the manner
 * of redis's rio: an encoder calls sink_write() and never knows whether
 * the bytes go to a file or (later) a pipe or a remote peer.  zsnap
 * (output-zsnap.c) writes through it, and so will any future streamed
 * destination: the file sink, and the S3 sink (an object uploaded in
 * parts while it is written).
 *
 * Not every output is a stream: the raw format is positional (a sparse
 * file per region, pages written with pwrite(2) at their offsets in any
 * order, a directory committed as a whole), so output-raw.c writes
 * through proto/rawdir.c, the raw format's one writer that the reader's
 * export shares, and not through a sink.
 *
 * A sink keeps a running count of the bytes written.  Its operations:
 *
 *	write	all of the bytes or fail (short writes and EINTR handled)
 *	sync	make what was written durable
 *	finish	commit: the output becomes visible under its final name
 *	abort	drop everything written (the temporary file is removed)
 *
 * sink_free() aborts unless finish succeeded, so a caller can free a sink
 * on every path.  Functions return 0, or -1 with errno set and a message in
 * sink_error() naming what failed ("write .x.zsnap.tmp-42: No space left on
 * device").  A sink is used by one thread at a time (the writer thread);
 * the S3 sink's own uploader threads are its business.
 */
#ifndef SNAPD_SINK_H
#define SNAPD_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SINK_ERROR_MAX	512

struct sink;

struct sink_ops {
	int	(*write)(struct sink *, const void *, size_t);
	int	(*sync)(struct sink *);
	int	(*finish)(struct sink *);
	void	(*abort)(struct sink *);
	void	(*free)(struct sink *);
};

struct sink {
	const struct sink_ops	*ops;
	uint64_t		 bytes;		/* written so far */
	int			 finished;	/* finish succeeded */
	int			 aborted;
	char			 error[SINK_ERROR_MAX];
};

/*
 * A file sink: creates ".NAME.SUFFIX.tmp-PID" in dirfd with openat(O_EXCL |
 * O_NOFOLLOW | O_CLOEXEC) and mode, chowns it to uid/gid unless both are -1;
 * finish fsyncs it, renames it to "NAME.SUFFIX" without replacing an
 * existing file (renameat2 RENAME_NOREPLACE) and fsyncs the directory.
 * dirfd is duplicated, the caller keeps its own.  On failure returns NULL
 * with errno set and a message in err.
 */
struct sink	*sink_file_open(int dirfd, const char *name, const char *suffix,
		    mode_t mode, uid_t uid, gid_t gid, char *err, size_t errlen);
/* The final name ("NAME.SUFFIX") of a file sink, relative to its dirfd. */
const char	*sink_file_name(const struct sink *s);

/*
 * An S3 sink (sink-s3.c): the bytes become one object, KEY in BUCKET,
 * uploaded as a multipart upload while they are written.
 *
 *	open	HEAD KEY, then CreateMultipartUpload, at once: an existing
 *		object (EEXIST: like the file sink, never replace), wrong
 *		credentials, a missing bucket or an unreachable service
 *		fail here, before anything else is done (the caller opens
 *		it before arming)
 *	write	fills a part buffer of part_size bytes; a full one is handed
 *		to one of parts_in_flight uploader threads (each its own
 *		s3_client, retrying as s3.h says).  When every buffer is
 *		full or in flight, write waits: a slow or stopped store
 *		holds the writer back, as a slow disk does, and memory
 *		stays at sink_s3_memory() (buffers are allocated when first
 *		needed).  An upload that failed for good fails every later
 *		write, sync and finish with its message ("PUT
 *		s3://b/k part 3: ... (5 tries)").
 *	sync	waits until every full part is uploaded
 *	finish	uploads the last (short, or for an empty object empty) part,
 *		waits for all, HEAD KEY again (EEXIST), then
 *		CompleteMultipartUpload with the parts in number order: the
 *		object appears only now, whole.  The uploader threads have
 *		ended when it returns 0.
 *	abort	stops the uploaders (an upload in progress ends at once),
 *		then AbortMultipartUpload with a fresh, uncancelled request
 *		of at most a few seconds: the parts are dropped, no object.
 *		If that fails, a warning names the upload, which stays for
 *		the next start-up's cleanup (s3_multipart_list).  If the
 *		upload is gone after a complete that seemed to fail (timed
 *		out: the service may still carry it out), an object under
 *		KEY with the multipart ETag of our part count is removed.
 *
 * cancel (may be NULL), when non-zero, ends any wait in write/sync/finish
 * with ECANCELED within SINK_S3_POLL_MS (50 ms), and with it the uploads in
 * progress; the writer's own requests (open's, finish's) poll it too.  The
 * uploader threads block every signal and run at the nice value of the
 * thread that opens the sink.  At most S3_PARTS_MAX parts: a write past
 * part_size * S3_PARTS_MAX bytes fails with EFBIG ("larger than 10000
 * parts of 64 MiB").
 */
struct s3_config;

#define SINK_S3_IN_FLIGHT_MAX	64

struct sink_s3_params {
	const struct s3_config	*conf;		/* copied */
	const char		*bucket;
	const char		*key;		/* the object's final key */
	uint64_t		 part_size;	/* S3_PART_SIZE_MIN..S3_PART_SIZE_MAX */
	int			 parts_in_flight; /* 1..SINK_S3_IN_FLIGHT_MAX */
	const _Atomic int	*cancel;
	int			 nice;		/* of the uploader threads, set
						 * by each as it starts ("s3-upload"
						 * in ps -L); 0: the opener's */
};

struct sink	*sink_s3_open(const struct sink_s3_params *p, char *err,
		    size_t errlen);
/* The memory an S3 sink holds at most: part_size * (parts_in_flight + 1). */
uint64_t	 sink_s3_memory(uint64_t part_size, int parts_in_flight);
/* "s3://BUCKET/KEY" of an S3 sink, NULL for any other. */
const char	*sink_s3_url(const struct sink *s);
/* The multipart upload's id of an S3 sink, NULL for any other. */
const char	*sink_s3_upload_id(const struct sink *s);
/*
 * 1 if upload_id is the upload of an S3 sink of this process that is
 * neither finished nor aborted: a cleanup of leftover uploads must leave
 * it alone.  Any thread.
 */
int		 sink_s3_live(const char *upload_id);

/* Upload figures of an S3 sink (zero for any other); any thread. */
struct sink_s3_stats {
	uint64_t	parts_uploaded;
	uint64_t	bytes_uploaded;
	uint64_t	retries;	/* tries beyond the first, all parts */
	uint64_t	waits;		/* writes that waited for a free buffer */
};
void		 sink_s3_stats(const struct sink *s, struct sink_s3_stats *st);

int		 sink_write(struct sink *s, const void *buf, size_t len);
int		 sink_sync(struct sink *s);
int		 sink_finish(struct sink *s);
void		 sink_abort(struct sink *s);
void		 sink_free(struct sink *s);
uint64_t	 sink_bytes(const struct sink *s);
const char	*sink_error(const struct sink *s);

#endif /* SNAPD_SINK_H */
