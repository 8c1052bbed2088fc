/* Constants and helpers that liburing 2.3 (Debian 12) lacks but the
 * running kernel supports.
 *
 * The constants carry the values of the Linux UAPI header io_uring.h. The
 * buffer-ring helpers stand in for io_uring_setup_buf_ring() and
 * io_uring_free_buf_ring(), which arrived in liburing 2.4. Once the build
 * requires liburing 2.4 or newer, this header can go. */
#ifndef RINGRELAY_CORE_URING_COMPAT_H
#define RINGRELAY_CORE_URING_COMPAT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>

/* send_zc flag in sqe->ioprio: report in the notification whether the
 * kernel had to copy the data (Linux 6.2). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif

/* recv/send flag in sqe->ioprio: use several provided buffers in one
 * completion (Linux 6.10). */
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif

/* timeout flag: post a completion every period (Linux 6.4). */
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6)
#endif

/* Largest buffer ring the kernel accepts, in entries (a power of two). */
#define URING_COMPAT_BUF_RING_MAX 32768u

static inline size_t uring_compat_buf_ring_bytes(unsigned entries)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = (size_t)entries * sizeof(struct io_uring_buf);

    return (bytes + page - 1) / page * page;
}

/* uring_compat_setup_buf_ring maps an empty ring of entries slots (a power
 * of two, at most URING_COMPAT_BUF_RING_MAX) and registers it as buffer
 * group bgid. Returns 0, or a negative errno with *out left NULL. */
static inline int uring_compat_setup_buf_ring(struct io_uring *ring,
                                              unsigned entries, int bgid,
                                              struct io_uring_buf_ring **out)
{
    struct io_uring_buf_reg reg = {0};
    size_t bytes = uring_compat_buf_ring_bytes(entries);
    void *mem;
    int rc;

    *out = NULL;
    if (entries == 0 || entries > URING_COMPAT_BUF_RING_MAX ||
        (entries & (entries - 1)) != 0 || bgid < 0 || bgid > UINT16_MAX) {
        return -EINVAL;
    }

    /* The kernel requires a page-aligned ring, which mmap guarantees. */
    mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        return -errno;
    }

    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = (uint16_t)bgid;
    rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        munmap(mem, bytes);
        return rc;
    }

    *out = mem;
    io_uring_buf_ring_init(*out);
    return 0;
}

/* uring_compat_free_buf_ring unregisters and unmaps a ring made by
 * uring_compat_setup_buf_ring; NULL is accepted. Returns 0, or the
 * negative errno of the unregister call (the memory is unmapped anyway). */
static inline int uring_compat_free_buf_ring(struct io_uring *ring,
                                             struct io_uring_buf_ring *br,
                                             unsigned entries, int bgid)
{
    int rc;

    if (br == NULL) {
        return 0;
    }
    rc = io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, uring_compat_buf_ring_bytes(entries));
    return rc < 0 ? rc : 0;
}

#endif
