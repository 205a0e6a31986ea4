#include "sf/utf8.h"

size_t sf_utf8_len(const unsigned char *c)
{
    size_t n = c[0] < 0x80 ? 1 : (c[0] & 0xe0) == 0xc0 ? 2 : (c[0] & 0xf0) == 0xe0 ? 3 : (c[0] & 0xf8) == 0xf0 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((c[i] & 0xc0) != 0x80) /* also stops at the NUL */
            return 0;
    if ((n == 2 && c[0] < 0xc2) || (n == 3 && c[0] == 0xe0 && c[1] < 0xa0) ||
        (n == 3 && c[0] == 0xed && c[1] >= 0xa0) || (n == 4 && c[0] == 0xf0 && c[1] < 0x90) ||
        (n == 4 && (c[0] > 0xf4 || (c[0] == 0xf4 && c[1] >= 0x90))))
        return 0;
    return n;
}
