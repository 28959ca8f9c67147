/*
 * powerloss_shim.c -- LD_PRELOAD recorder for tools/powerloss.py.
 *
 * Built by powerloss.py with `cc -shared -fPIC -O2 -Wall -Wextra` into a temporary
 * directory; not part of the pylog build.  Loaded into a writer process, it reports
 * to the recorder (the parent, over the socket whose number is in
 * PYLOG_POWERLOSS_FD) every call that orders or persists the file system:
 *
 *   S <path>                  fsync      } before the real call: the recorder takes
 *   D <path>                  fdatasync  } its snapshot, so what is in it was
 *   M <path> <offset> <len>   msync      } written before the barrier began
 *   R <src> <dst> <rc>        rename, renameat, renameat2  } after the real call
 *   U <path> <rc>             unlink, unlinkat, rmdir      } (rc 0: it happened)
 *
 * and blocks until the recorder answers with one line: the number of barriers it
 * has recorded so far.  plshim_last_barrier() returns the largest such number this
 * process has seen, read by the writer after each acknowledged append, so an ack
 * journaled with number c came after barrier c began.  A lock serialises the
 * reports, so the recorder sees one total order; for renames and unlinks the lock
 * is held across the real call, so the recorded order is the order they happened.
 *
 * Unlike csrc/, this file has global state (the socket, the lock, the counter):
 * an interposer has nowhere else to keep it.  Without PYLOG_POWERLOSS_FD (or once
 * the socket fails) every call passes straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PLEN (2 * PATH_MAX + 2)          /* a directory, '/', a name */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;
static long last_barrier;

__attribute__((constructor)) static void shim_init(void)
{
    const char *fd = getenv("PYLOG_POWERLOSS_FD"), *base = getenv("PYLOG_POWERLOSS_BASE");
    sock = fd ? atoi(fd) : -1;
    last_barrier = base ? atol(base) : 0;
}

long plshim_last_barrier(void)
{
    return __atomic_load_n(&last_barrier, __ATOMIC_SEQ_CST);
}

static void *real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Send one line, read the one-line answer; the caller holds the lock. */
static void report_locked(const char *line)
{
    char reply[32];
    size_t len = strlen(line), off = 0, got = 0;

    if (sock < 0)
        return;
    while (off < len) {
        ssize_t w = send(sock, line + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sock = -1;
            return;
        }
        off += (size_t)w;
    }
    while (got < sizeof(reply) - 1) {
        ssize_t r = recv(sock, reply + got, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            sock = -1;
            return;
        }
        if (reply[got++] == '\n')
            break;
    }
    reply[got] = 0;
    long n = atol(reply);
    if (n > __atomic_load_n(&last_barrier, __ATOMIC_SEQ_CST))
        __atomic_store_n(&last_barrier, n, __ATOMIC_SEQ_CST);
}

static void fd_path(int fd, char *out, size_t cap)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof(link), fd == AT_FDCWD ? "/proc/self/cwd" : "/proc/self/fd/%d", fd);
    n = readlink(link, out, cap - 1);
    out[n > 0 ? n : 0] = 0;
}

/* Absolute form of `path` relative to directory fd `dirfd`. */
static void at_path(int dirfd, const char *path, char *out, size_t cap)
{
    char dir[PATH_MAX];

    if (path[0] == '/') {
        snprintf(out, cap, "%s", path);
        return;
    }
    fd_path(dirfd, dir, sizeof(dir));
    snprintf(out, cap, "%s/%s", dir, path);
}

static void barrier(char kind, int fd)
{
    char path[PATH_MAX], line[PATH_MAX + 8];
    int e = errno;

    if (sock < 0)
        return;
    fd_path(fd, path, sizeof(path));
    snprintf(line, sizeof(line), "%c\t%s\n", kind, path);
    pthread_mutex_lock(&lock);
    report_locked(line);
    pthread_mutex_unlock(&lock);
    errno = e;
}

int fsync(int fd)
{
    int (*f)(int) = real("fsync");
    barrier('S', fd);
    return f(fd);
}

int fdatasync(int fd)
{
    int (*f)(int) = real("fdatasync");
    barrier('D', fd);
    return f(fd);
}

/* The mapped file and file offset of addr, from /proc/self/maps. */
static int map_file(uintptr_t addr, char *path, size_t cap, unsigned long long *offset)
{
    char line[PATH_MAX + 128];
    FILE *maps = fopen("/proc/self/maps", "re");
    int found = 0;

    if (maps == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), maps) != NULL) {
        unsigned long long lo, hi, off;
        int name_at = 0;
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &lo, &hi, &off, &name_at) < 3)
            continue;
        if (addr < lo || addr >= hi || name_at == 0)
            continue;
        snprintf(path, cap, "%s", line + name_at);
        path[strcspn(path, "\n")] = 0;
        *offset = off + (addr - lo);
        found = 1;
    }
    fclose(maps);
    return found;
}

int msync(void *addr, size_t length, int flags)
{
    int (*f)(void *, size_t, int) = real("msync");
    char path[PATH_MAX], line[PATH_MAX + 64];
    unsigned long long off;
    int e = errno;

    if (sock >= 0 && (flags & MS_SYNC) && map_file((uintptr_t)addr, path, sizeof(path), &off)) {
        snprintf(line, sizeof(line), "M\t%s\t%llu\t%zu\n", path, off, length);
        pthread_mutex_lock(&lock);
        report_locked(line);
        pthread_mutex_unlock(&lock);
    }
    errno = e;
    return f(addr, length, flags);
}

/* A rename or unlink: done and reported under the lock, in the order they happen. */
static int dir_op(char kind, const char *a, const char *b, int rc)
{
    char line[2 * PLEN + 32];
    int e = errno;

    if (b != NULL)
        snprintf(line, sizeof(line), "%c\t%s\t%s\t%d\n", kind, a, b, rc);
    else
        snprintf(line, sizeof(line), "%c\t%s\t%d\n", kind, a, rc);
    report_locked(line);
    errno = e;
    return rc;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    int (*f)(int, const char *, int, const char *, unsigned int) = real("renameat2");
    char a[PLEN], b[PLEN];
    int rc;

    if (sock < 0)
        return f(olddirfd, oldpath, newdirfd, newpath, flags);
    at_path(olddirfd, oldpath, a, sizeof(a));
    at_path(newdirfd, newpath, b, sizeof(b));
    pthread_mutex_lock(&lock);
    rc = dir_op('R', a, b, f(olddirfd, oldpath, newdirfd, newpath, flags));
    pthread_mutex_unlock(&lock);
    return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    int (*f)(int, const char *, int, const char *) = real("renameat");
    char a[PLEN], b[PLEN];
    int rc;

    if (sock < 0)
        return f(olddirfd, oldpath, newdirfd, newpath);
    at_path(olddirfd, oldpath, a, sizeof(a));
    at_path(newdirfd, newpath, b, sizeof(b));
    pthread_mutex_lock(&lock);
    rc = dir_op('R', a, b, f(olddirfd, oldpath, newdirfd, newpath));
    pthread_mutex_unlock(&lock);
    return rc;
}

int rename(const char *oldpath, const char *newpath)
{
    int (*f)(const char *, const char *) = real("rename");
    char a[PLEN], b[PLEN];
    int rc;

    if (sock < 0)
        return f(oldpath, newpath);
    at_path(AT_FDCWD, oldpath, a, sizeof(a));
    at_path(AT_FDCWD, newpath, b, sizeof(b));
    pthread_mutex_lock(&lock);
    rc = dir_op('R', a, b, f(oldpath, newpath));
    pthread_mutex_unlock(&lock);
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags)
{
    int (*f)(int, const char *, int) = real("unlinkat");
    char a[PLEN];
    int rc;

    if (sock < 0)
        return f(dirfd, path, flags);
    at_path(dirfd, path, a, sizeof(a));
    pthread_mutex_lock(&lock);
    rc = dir_op('U', a, NULL, f(dirfd, path, flags));
    pthread_mutex_unlock(&lock);
    return rc;
}

int unlink(const char *path)
{
    int (*f)(const char *) = real("unlink");
    char a[PLEN];
    int rc;

    if (sock < 0)
        return f(path);
    at_path(AT_FDCWD, path, a, sizeof(a));
    pthread_mutex_lock(&lock);
    rc = dir_op('U', a, NULL, f(path));
    pthread_mutex_unlock(&lock);
    return rc;
}

int rmdir(const char *path)
{
    int (*f)(const char *) = real("rmdir");
    char a[PLEN];
    int rc;

    if (sock < 0)
        return f(path);
    at_path(AT_FDCWD, path, a, sizeof(a));
    pthread_mutex_lock(&lock);
    rc = dir_op('U', a, NULL, f(path));
    pthread_mutex_unlock(&lock);
    return rc;
}
