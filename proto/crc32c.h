/*
 * CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the checksum of
 * every zsnap metadata payload and of every chunk's page data.
 *
 * crc32c(0, buf, len) starts a new checksum; passing a previous result
 * continues it, so crc32c(crc32c(0, a, n), b, m) equals the checksum of a
 * followed by b.  The check value of "123456789" is 0xE3069283.
 * Thread-safe; uses the SSE4.2 crc32 instruction when the CPU has it.
 */
#ifndef SNAPD_CRC32C_H
#define SNAPD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t	crc32c(uint32_t crc, const void *buf, size_t len);

/* The table-driven path alone, whatever the CPU: for tests that check both
 * implementations against each other. */
uint32_t	crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif /* SNAPD_CRC32C_H */
