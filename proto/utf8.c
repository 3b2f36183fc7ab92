/*
 * UTF-8 validation: see utf8.h.  Follows RFC 3629's table of well-formed
 * byte sequences, the same rule jansson applies to json_string().
 */
#include <stddef.h>

#include "utf8.h"

int
utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s != '\0') {
		unsigned char	c = *s;
		unsigned	n, lo = 0x80, hi = 0xBF;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;	/* no overlong forms */
			else if (c == 0xED)
				hi = 0x9F;	/* no surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;	/* nothing past U+10FFFF */
		} else
			return 0;
		s++;
		for (unsigned i = 0; i < n; i++, s++) {
			if (*s < (i == 0 ? lo : 0x80) || *s > (i == 0 ? hi : 0xBF))
				return 0;
		}
	}
	return 1;
}

void
utf8_sanitize(char *s)
{
	if (utf8_valid(s))
		return;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			*s = '?';
}
