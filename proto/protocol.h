/*
 * snapd control protocol constants, shared by the daemon and libsnapclient.
 *
 * The protocol itself (every command, event and error) is described in
 * proto/PROTOCOL.md and, machine-readably, in proto/schema.json.
 *
 * Bump SNAPD_PROTOCOL_VERSION if any of these, or any message's shape,
 * change incompatibly.
 *
 * History:
 *   1	first version.
 *   2	one name per quantity: SNAPSHOT_COMPLETED's "size" is
 *	"bytes-written" and its "pages" "pages-total", as in
 *	query-snapshots and SNAPSHOT_PROGRESS; "pages" is "pages-total" in
 *	SNAPSHOT_ARMED and the snapshot-start and snapshot-arm replies;
 *	SNAPSHOT_FAILED's "reason" is "error", as in query-snapshots.
 */
#ifndef SNAPD_PROTOCOL_H
#define SNAPD_PROTOCOL_H

#define SNAPD_PROTOCOL_VERSION		2

/* Default paths (the configuration may change them). */
#define SNAPD_DEFAULT_SOCKET		"/run/memsnap/snapd.sock"
#define SNAPD_DEFAULT_SNAPSHOT_DIR	"/var/lib/memsnap/snapshots"
#define SNAPD_DEFAULT_CONFIG		"/etc/memsnap/snapd.conf"
#define SNAPD_SOCKET_ENV		"SNAPD_SOCKET"	/* clients honour it */

/* Messages are newline-terminated JSON objects of at most this many bytes. */
#define SNAPD_MESSAGE_MAX_DEFAULT	65536
/* File descriptors accepted with one message (SCM_RIGHTS). */
#define SNAPD_FDS_PER_MESSAGE_MAX	4
/* Named fds held by one connection (getfd). */
#define SNAPD_FDS_PER_CONNECTION_MAX	16
/* Regions in one snapshot-start. */
#define SNAPD_REGIONS_MAX		256

/* Snapshot and region names: [A-Za-z0-9._-], not starting with '.', 1..63. */
#define SNAPD_NAME_MAX			63
/* That rule as every message about a bad name words it. */
#define SNAPD_NAME_RULE		"1 to " SNAPD_XSTR(SNAPD_NAME_MAX) \
	" of A-Z a-z 0-9 . _ -, not starting with '.'"

/*
 * snapd works in 4 KiB pages: the regions a client names, the engine's
 * protection and buffer slots, both output formats (proto/zsnap.h's
 * ZSNAP_PAGE_SIZE is this, frozen on disk).
 */
#define SNAPD_PAGE_SIZE			4096u

/* snapshot-start's "format" (and the format config key): the wire names. */
#define SNAPD_FORMAT_ZSNAP		"zsnap"
#define SNAPD_FORMAT_RAW		"raw"
/* snapshot-start's "level" (and compression_level): zstd levels. */
#define SNAPD_LEVEL_MIN			1
#define SNAPD_LEVEL_MAX			19
/* snapshot-start's "buffer-size" (and buffer_size), in bytes. */
#define SNAPD_BUFFER_SIZE_MIN		SNAPD_PAGE_SIZE
#define SNAPD_BUFFER_SIZE_MAX		(64ULL << 30)
/*
 * snapshot-start's "max-bandwidth": bytes of page data a second (pages
 * saved x SNAPD_PAGE_SIZE, as QEMU's max-bandwidth counts its stream); 0
 * is no limit, anything else at least one page a second.
 */
#define SNAPD_MAX_BANDWIDTH_MIN		SNAPD_PAGE_SIZE

#define SNAPD_STR(x)			#x
#define SNAPD_XSTR(x)			SNAPD_STR(x)

/* Error classes (QMP's, plus our own). */
#define SNAPD_ERR_GENERIC		"GenericError"
#define SNAPD_ERR_COMMAND_NOT_FOUND	"CommandNotFound"
#define SNAPD_ERR_INVALID		"InvalidParameter"
#define SNAPD_ERR_PERMISSION		"PermissionDenied"
#define SNAPD_ERR_NOT_FOUND		"NotFound"
#define SNAPD_ERR_BUSY			"Busy"
#define SNAPD_ERR_PARSE			"ParseError"
#define SNAPD_ERR_TOO_LARGE		"MessageTooLarge"

/* Events. */
#define SNAPD_EV_ARMED			"SNAPSHOT_ARMED"
#define SNAPD_EV_PROGRESS		"SNAPSHOT_PROGRESS"
#define SNAPD_EV_COMPLETED		"SNAPSHOT_COMPLETED"
#define SNAPD_EV_FAILED			"SNAPSHOT_FAILED"
#define SNAPD_EV_BUFFER_FULL		"SNAPSHOT_BUFFER_FULL"

#endif /* SNAPD_PROTOCOL_H */
