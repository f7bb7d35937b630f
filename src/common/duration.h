/* duration.h - durations written for people ("7d", "1d12h", "90 min") as seconds. Pure. */
#ifndef OUTBOXD_DURATION_H
#define OUTBOXD_DURATION_H

/* Parses a duration: "0", a number of seconds ("3600"), or one or more number+unit parts
 * ("7d", "12h", "1d12h", "90 min", "2 weeks"), blanks allowed around the parts. Units (any
 * case): s, sec(s), second(s); m, min(s), minute(s); h, hour(s); d, day(s); w, week(s).
 * Returns 0 with *seconds, or -1 (NULL, empty, a sign, a fraction, an unknown unit, a bare
 * number next to other parts, an overflow of long long). */
int duration_parse(const char *s, long long *seconds);

#endif
