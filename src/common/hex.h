/* hex.h - hexadecimal digits: the value of one digit and the digit of a value. Pure. */
#ifndef OUTBOXD_HEX_H
#define OUTBOXD_HEX_H

/* Value 0..15 of one hex digit (either case), or -1 if c is not one. */
int hex_digit_value(char c);

/* Lower-case digit of v & 15. */
char hex_digit_char(unsigned v);

#endif
