/*
 * UTF-8 checks for names that end up in JSON (the control protocol,
 * snapshot.json, query-config): the daemon and the reader share them.
 */
#ifndef SNAPD_UTF8_H
#define SNAPD_UTF8_H

/* 1 if s is valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), else 0. */
int	utf8_valid(const char *s);

/* Make s valid UTF-8 in place: if it is not, every non-ASCII byte
 * becomes '?'. */
void	utf8_sanitize(char *s);

#endif /* SNAPD_UTF8_H */
