/*
 * Unit test of the output sinks (daemon/format/sink.h).  What must hold:
 *
 *   file	what is written is what the finished file holds, under its
 *		final name only after finish, with the mode asked; the
 *		temporary file is gone either way; freeing an unfinished
 *		sink leaves nothing behind; finish never replaces a file;
 *   errors	a write the system refuses fails with its errno and a
 *		message naming the output: a full tmpfs, when one can be
 *		mounted (ENOSPC); writing after finish fails with EINVAL.
 *
 * Exits 0 on pass, 1 on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"
#include "unit-check.h"

#define BIG	(1024 * 1024 + 123)	/* many writes, not page-aligned */

static char	tmpdir[] = "/tmp/test_sink.XXXXXX";

static unsigned char *
pattern(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len);

	if (p == NULL) {
		perror("malloc");
		exit(1);
	}
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 131 + seed) ^ (i >> 9));
	return p;
}

/* Write buf through s in uneven pieces. */
static int
write_pieces(struct sink *s, const unsigned char *buf, size_t len)
{
	size_t off = 0, piece = 1;

	while (off < len) {
		size_t n = piece < len - off ? piece : len - off;

		if (sink_write(s, buf + off, n) == -1)
			return -1;
		off += n;
		piece = piece * 3 + 7;
	}
	return 0;
}

static int
exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
test_file(int dirfd)
{
	unsigned char	*buf = pattern(BIG, 1), *back;
	char		 err[256], tmpname[128];
	struct sink	*s;
	struct stat	 st;
	int		 fd;

	snprintf(tmpname, sizeof(tmpname), ".snap.zsnap.tmp-%ld",
	    (long)getpid());
	s = sink_file_open(dirfd, "snap", ".zsnap", 0640, (uid_t)-1,
	    (gid_t)-1, err, sizeof(err));
	if (s == NULL) {
		FAIL("file: sink_file_open: %s", err);
		free(buf);
		return;
	}
	if (strcmp(sink_file_name(s), "snap.zsnap") != 0)
		FAIL("file: final name '%s'", sink_file_name(s));
	if (write_pieces(s, buf, BIG) == -1)
		FAIL("file: write: %s", sink_error(s));
	if (sink_bytes(s) != BIG)
		FAIL("file: %llu bytes counted, %d written",
		    (unsigned long long)sink_bytes(s), BIG);
	if (exists(dirfd, "snap.zsnap") || !exists(dirfd, tmpname))
		FAIL("file: before finish the final name must not exist, "
		    "the temporary %s must", tmpname);
	if (sink_sync(s) == -1 || sink_finish(s) == -1)
		FAIL("file: sync or finish: %s", sink_error(s));
	if (exists(dirfd, tmpname))
		FAIL("file: %s is left after finish", tmpname);
	if (sink_write(s, buf, 1) != -1 || errno != EINVAL)
		FAIL("file: a write after finish did not fail with EINVAL");
	sink_free(s);

	back = malloc(BIG + 1);
	if ((fd = openat(dirfd, "snap.zsnap", O_RDONLY)) == -1) {
		FAIL("file: snap.zsnap is missing after finish");
		free(back);
		free(buf);
		return;
	}
	if (fstat(fd, &st) == -1 || (st.st_mode & 0777) != 0640)
		FAIL("file: mode %o, asked 0640", st.st_mode & 0777);
	if (read(fd, back, BIG + 1) != BIG || memcmp(back, buf, BIG) != 0)
		FAIL("file: the file does not hold what was written");
	close(fd);

	/* finish never replaces: snap.zsnap exists now. */
	s = sink_file_open(dirfd, "snap", ".zsnap", 0600, (uid_t)-1,
	    (gid_t)-1, err, sizeof(err));
	if (s == NULL)
		FAIL("file: second sink_file_open: %s", err);
	else {
		sink_write(s, "x", 1);
		if (sink_finish(s) != -1 || errno != EEXIST ||
		    strstr(sink_error(s), "snap.zsnap") == NULL)
			FAIL("file: finish over an existing file: errno %d, "
			    "'%s'", errno, sink_error(s));
		sink_free(s);
		if (exists(dirfd, tmpname))
			FAIL("file: a failed finish left %s", tmpname);
		if ((fd = openat(dirfd, "snap.zsnap", O_RDONLY)) == -1 ||
		    read(fd, back, BIG + 1) != BIG ||
		    memcmp(back, buf, BIG) != 0)
			FAIL("file: a failed finish changed the file");
		if (fd != -1)
			close(fd);
	}

	/* Freed unfinished: nothing is left. */
	s = sink_file_open(dirfd, "gone", ".raw", 0600, (uid_t)-1, (gid_t)-1,
	    err, sizeof(err));
	if (s == NULL)
		FAIL("file: sink_file_open gone: %s", err);
	else {
		sink_write(s, buf, 4096);
		sink_free(s);
		snprintf(tmpname, sizeof(tmpname), ".gone.raw.tmp-%ld",
		    (long)getpid());
		if (exists(dirfd, tmpname) || exists(dirfd, "gone.raw"))
			FAIL("file: an unfinished sink left a file");
	}
	free(back);
	free(buf);
}

static void
test_full(int dirfd)
{
	unsigned char	*buf = pattern(BIG, 3);
	char		 err[256], mnt[600];
	struct sink	*s;
	int		 mfd;

	/* A 64 KiB tmpfs, when this process may mount one. */
	snprintf(mnt, sizeof(mnt), "%s/small", tmpdir);
	if (mkdirat(dirfd, "small", 0700) == -1 ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=64k") == -1) {
		printf("full tmpfs not checked: mount: %s\n", strerror(errno));
		free(buf);
		return;
	}
	if ((mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		FAIL("full: open %s: %s", mnt, strerror(errno));
	else if ((s = sink_file_open(mfd, "big", ".zsnap", 0600, (uid_t)-1,
	    (gid_t)-1, err, sizeof(err))) == NULL)
		FAIL("full: sink_file_open on tmpfs: %s", err);
	else {
		errno = 0;
		if (sink_write(s, buf, BIG) != -1 || errno != ENOSPC ||
		    strstr(sink_error(s), strerror(ENOSPC)) == NULL)
			FAIL("full: 1 MiB into a 64 KiB tmpfs: errno %d, '%s'",
			    errno, sink_error(s));
		sink_free(s);
		if (exists(mfd, "big.zsnap"))
			FAIL("full: a failed sink left its file");
	}
	if (mfd != -1)
		close(mfd);
	umount2(mnt, MNT_DETACH);
	free(buf);
}

int
main(void)
{
	char	cmd[600];
	int	dirfd;

	if (mkdtemp(tmpdir) == NULL ||
	    (dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		perror(tmpdir);
		return 1;
	}
	test_file(dirfd);
	test_full(dirfd);
	close(dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return unit_finish("sink");
}
