/*
 * io.c -- mapped files: the only file that calls mmap/munmap/msync/fallocate/
 * ftruncate/fsync/pwrite.
 *
 * A pl_mfile maps `reserved` bytes of address space once (MAP_SHARED) and never
 * moves it, so pointers handed to Python stay valid until Python calls
 * pl_io_unmap.  Three lengths, always allocated <= reserved and size <= allocated:
 *
 *   [0, size)            data
 *   [size, allocated)    fallocated blocks (zero, or stale bytes we zeroed)
 *   [allocated, reserved) mapped address space beyond end of file: never touched
 *
 * Why fallocate before every store (research/reliability.md section 4): a store
 * into a sparse or beyond-EOF page of a full file system raises SIGBUS and the
 * later msync/fdatasync report nothing; posix_fallocate instead returns ENOSPC
 * before any byte is written.  Why seal swaps the tail pages for an anonymous
 * PROT_NONE reservation instead of plain munmap: Python releases the whole
 * [map, map + reserved) later, and a plain hole could meanwhile be reused by an
 * unrelated mapping that the final munmap would then destroy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_internal.h"

static uint64_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (uint64_t)ps : 4096;
}

static int close_keep_errno(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
    return e;
}

int pl_mfile_open(pl_mfile *f, const char *path, int create, int writable,
                  uint64_t reserved, uint64_t grow_chunk)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, fd;
    struct stat st;
    uint64_t len;
    void *map = NULL;

    if (f == NULL || path == NULL || create < PL_MF_EXISTING || create > PL_MF_EXCL)
        return PL_EINVAL;
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    if (create == PL_MF_CREATE)
        flags |= O_CREAT;
    else if (create == PL_MF_EXCL)
        flags |= O_CREAT | O_EXCL;
    fd = open(path, flags, 0644);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0)
        return close_keep_errno(fd);
    len = (uint64_t)st.st_size;
    if (writable) {
        reserved = pl_round_up(reserved > len ? reserved : len, page_size());
        if (reserved == 0)
            reserved = page_size();
    } else {
        reserved = len;
    }
    if (reserved > 0) {
        map = mmap(NULL, (size_t)reserved, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                   MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            return close_keep_errno(fd);
    }
    f->fd = fd;
    f->map = map;
    f->reserved = f->limit = reserved;
    f->allocated = f->size = f->synced = len;
    f->grow_chunk = grow_chunk ? grow_chunk : page_size();
    f->writable = writable ? 1 : 0;
    return PL_OK;
}

int pl_mfile_ensure(pl_mfile *f, uint64_t need)
{
    uint64_t target;
    int rc;

    if (need <= f->allocated)
        return PL_OK;
    if (!f->writable || f->fd < 0)
        return PL_ECLOSED;
    if (need > f->reserved)
        return PL_EFULL;
    target = pl_round_up(need, f->grow_chunk);
    if (target > f->reserved)
        target = f->reserved;
    rc = posix_fallocate(f->fd, (off_t)f->allocated, (off_t)(target - f->allocated));
    if (rc == ENOSPC && target > need) {
        /* The chunk does not fit; the bytes actually needed might. */
        target = pl_round_up(need, page_size());
        if (target > f->reserved)
            target = f->reserved;
        rc = posix_fallocate(f->fd, (off_t)f->allocated, (off_t)(target - f->allocated));
    }
    if (rc != 0)
        return rc;
    f->allocated = target;
    return PL_OK;
}

int pl_mfile_write(pl_mfile *f, uint64_t at, const void *buf, size_t len)
{
    struct iovec one = {(void *)buf, len};
    return pl_mfile_writev(f, at, &one, 1);
}

int pl_mfile_writev(pl_mfile *f, uint64_t at, struct iovec *iov, size_t n)
{
    uint64_t len = 0;
    size_t k;

    for (k = 0; k < n; k++)
        len += iov[k].iov_len;
    if (!f->writable || f->fd < 0)
        return PL_ECLOSED;
    if (at > f->allocated || len > f->allocated - at)
        return PL_EINVAL;                 /* never past the fallocated blocks */
    while (n > 0) {
        int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
        ssize_t w = pwritev(f->fd, iov, cnt, (off_t)at);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        at += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {   /* drop what was written */
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0 && w > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return PL_OK;
}

void pl_mfile_prefault(const pl_mfile *f, uint64_t from, uint64_t to)
{
#ifdef MADV_POPULATE_READ
    uint64_t ps = page_size();

    if (f->map == NULL || to > f->size)
        to = f->map == NULL ? 0 : f->size;
    from = from / ps * ps;
    if (from >= to)
        return;
    /* Advice only: EINVAL before Linux 5.14, and any other failure, leaves the
     * pages to be faulted in one by one as before. */
    (void)madvise(f->map + from, (size_t)(to - from), MADV_POPULATE_READ);
#else
    (void)f;
    (void)from;
    (void)to;
#endif
}

int pl_mfile_sync(pl_mfile *f)
{
    /* One barrier, not two: on Linux fdatasync writes back every dirty page of the
     * file, those stored through the shared mapping included (one page cache), and
     * commits the metadata that turns fallocated "unwritten" extents into written
     * ones; msync(MS_SYNC) would be the same vfs_fsync_range again for the range
     * (research/reliability.md, "msync vs fdatasync").  Doing both cost a second
     * journal commit per group commit. */
    if (!f->writable || f->fd < 0 || f->size <= f->synced)
        return PL_OK;
    if (fdatasync(f->fd) != 0)
        return errno;
    f->synced = f->size;
    return PL_OK;
}

/* Zero [from, to) of the mapping, skipping pages that are already all zero so a
 * preallocated (unwritten) tail is not dirtied. */
static void zero_range(uint8_t *map, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[256];
    uint64_t ps = page_size();

    while (from < to) {
        uint64_t stop = pl_round_up(from + 1, ps), at;
        if (stop > to)
            stop = to;
        for (at = from; at < stop; at += sizeof(zeros)) {
            size_t n = stop - at < sizeof(zeros) ? (size_t)(stop - at) : sizeof(zeros);
            if (memcmp(map + at, zeros, n) != 0) {
                memset(map + from, 0, (size_t)(stop - from));
                break;
            }
        }
        from = stop;
    }
}

int pl_mfile_truncate(pl_mfile *f, uint64_t new_size)
{
    uint64_t from, end = f->allocated;

    if (!f->writable || f->fd < 0)
        return PL_ECLOSED;
    if (new_size > f->size)
        return PL_EINVAL;
    zero_range(f->map, new_size, end);
    f->size = new_size;
    from = new_size / page_size() * page_size();
    if (end > from && msync(f->map + from, (size_t)(end - from), MS_SYNC) != 0)
        return errno;
    if (fdatasync(f->fd) != 0)
        return errno;
    f->synced = new_size;
    return PL_OK;
}

int pl_mfile_seal(pl_mfile *f)
{
    uint64_t keep;

    if (!f->writable)
        return PL_OK;
    if (f->fd < 0)
        return PL_ECLOSED;
    keep = pl_round_up(f->size, page_size());
    if (keep < f->reserved) {
        void *p = mmap(f->map + keep, (size_t)(f->reserved - keep), PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED)
            return errno;
    }
    if (ftruncate(f->fd, (off_t)f->size) != 0)
        return errno;
    if (f->size > f->synced) {
        uint64_t from = f->synced / page_size() * page_size();
        if (msync(f->map + from, (size_t)(f->size - from), MS_SYNC) != 0)
            return errno;
    }
    if (fsync(f->fd) != 0)
        return errno;
    f->allocated = f->synced = f->size;
    f->limit = f->size;
    f->writable = 0;
    return PL_OK;
}

int pl_mfile_close(pl_mfile *f)
{
    int rc = PL_OK;
    if (f->fd >= 0 && close(f->fd) != 0)
        rc = errno;
    f->fd = -1;
    f->writable = 0;
    return rc;
}

int pl_io_unmap(void *addr, uint64_t len)
{
    if (addr == NULL || len == 0)
        return PL_OK;
    return munmap(addr, (size_t)len) == 0 ? PL_OK : errno;
}

int pl_io_fsync_dir(const char *dir_path)
{
    int fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = PL_OK;
    if (fd < 0)
        return errno;
    if (fsync(fd) != 0)
        rc = errno;
    close(fd);
    return rc;
}
