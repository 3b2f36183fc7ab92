/*
 * One line of the snapd.conf(5) grammar: see confline.h.  Thread-safe: it
 * keeps no state.
 */
#include <ctype.h>
#include <stdio.h>

#include "confline.h"

int
confline_split(char *line, char **key, char **value, char *err, size_t errlen)
{
	char	*p = line, *q;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#' || *p == '\n' || *p == '\r')
		return 0;
	*key = p;
	while (*p != '\0' && !isspace((unsigned char)*p) && *p != '#')
		p++;
	q = p;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '"') {
		*q = '\0';
		*value = ++p;
		while (*p != '\0' && *p != '"' && *p != '\n')
			p++;
		if (*p != '"') {
			snprintf(err, errlen, "unterminated quoted value for '%s'",
			    *key);
			return -1;
		}
		*p++ = '\0';
	} else if (*p == '\0' || *p == '#' || *p == '\n' || *p == '\r') {
		*q = '\0';
		snprintf(err, errlen, "missing value for '%s'", *key);
		return -1;
	} else {
		if (p == q) {
			/* The key ran into something that is not a blank. */
			*q = '\0';
			snprintf(err, errlen, "missing value for '%s'", *key);
			return -1;
		}
		*q = '\0';
		*value = p;
		while (*p != '\0' && !isspace((unsigned char)*p) && *p != '#') {
			if (*p == '"') {
				snprintf(err, errlen,
				    "bad value for '%s': stray "
				    "'\"' (quote the whole value)", *key);
				return -1;
			}
			p++;
		}
		if (*p != '\0') {
			char c = *p;

			*p = '\0';
			if (c == '#')
				return 1;
			p++;
		}
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p != '\0' && *p != '#') {
		snprintf(err, errlen, "unexpected text after the value of '%s'",
		    *key);
		return -1;
	}
	return 1;
}
