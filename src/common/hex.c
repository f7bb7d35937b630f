/* hex.c - hexadecimal digits: the value of one digit and the digit of a value. */
#include "hex.h"

int hex_digit_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char hex_digit_char(unsigned v) { return "0123456789abcdef"[v & 15]; }
