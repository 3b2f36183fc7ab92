/*
 * CRC-32C for zsnap: the SSE4.2 crc32 instruction where the CPU has it
 * (about 8 bytes per cycle), otherwise slicing-by-8 tables.
 *
 * The choice and the tables are made once, under pthread_once, by the first
 * caller on any thread; after that every call is lock-free.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "crc32c.h"

#define CRC32C_POLY_REFLECTED	0x82F63B78u

typedef uint32_t crc_func(uint32_t, const unsigned char *, size_t);

static uint32_t		 crc_table[8][256];
static crc_func		*crc_impl;
static pthread_once_t	 crc_once = PTHREAD_ONCE_INIT;

/* Table-driven: eight bytes per step (slicing-by-8). */
static uint32_t
crc32c_soft(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= crc;
		crc = crc_table[7][lo & 0xff] ^
		    crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^
		    crc_table[4][lo >> 24] ^
		    crc_table[3][hi & 0xff] ^
		    crc_table[2][(hi >> 8) & 0xff] ^
		    crc_table[1][(hi >> 16) & 0xff] ^
		    crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t
crc32c_sse42(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t crc64;

	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = __builtin_ia32_crc32qi(crc, *p++);
		len--;
	}
	crc64 = crc;
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		crc64 = __builtin_ia32_crc32di(crc64, v);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)crc64;
	while (len-- > 0)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

static void
crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = crc_table[0][i];

		for (int t = 1; t < 8; t++) {
			c = crc_table[0][c & 0xff] ^ (c >> 8);
			crc_table[t][i] = c;
		}
	}
	crc_impl = crc32c_soft;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		crc_impl = crc32c_sse42;
#endif
}

uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc32c_init);
	return ~crc_impl(~crc, buf, len);
}

uint32_t
crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&crc_once, crc32c_init);
	return ~crc32c_soft(~crc, buf, len);
}
