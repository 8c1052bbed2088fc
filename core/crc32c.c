#include "core/crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u

/* crc32c_table[k][b] is the CRC contribution of byte b followed by k zero
 * bytes, which lets the loop fold eight input bytes per step. */
static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build_tables(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;

        for (int bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ ((crc & 1u) ? CRC32C_POLY : 0u);
        }
        crc32c_table[0][b] = crc;
    }

    for (uint32_t b = 0; b < 256; b++) {
        for (int k = 1; k < 8; k++) {
            uint32_t prev = crc32c_table[k - 1][b];

            crc32c_table[k][b] = (prev >> 8) ^ crc32c_table[0][prev & 0xffu];
        }
    }
}

static uint32_t crc32c_load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;

    pthread_once(&crc32c_once, crc32c_build_tables);
    crc = ~crc;

    while (len >= 8) {
        uint32_t lo = crc32c_load_le32(p) ^ crc;
        uint32_t hi = crc32c_load_le32(p + 4);

        crc = crc32c_table[7][lo & 0xffu] ^
              crc32c_table[6][(lo >> 8) & 0xffu] ^
              crc32c_table[5][(lo >> 16) & 0xffu] ^
              crc32c_table[4][lo >> 24] ^
              crc32c_table[3][hi & 0xffu] ^
              crc32c_table[2][(hi >> 8) & 0xffu] ^
              crc32c_table[1][(hi >> 16) & 0xffu] ^
              crc32c_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }

    while (len > 0) {
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p) & 0xffu];
        p++;
        len--;
    }
    return ~crc;
}
