/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
 * ext4 metadata and SCTP. Software only: table-driven, eight bytes per
 * step. */
#ifndef RINGRELAY_CORE_CRC32C_H
#define RINGRELAY_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c_update extends crc over len bytes of data. Start with 0; the
 * pre- and post-inversion happen inside, so
 * crc32c_update(crc32c_update(0, a), b) equals the CRC of a followed by b.
 * The CRC of "123456789" is 0xE3069283. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

#endif
