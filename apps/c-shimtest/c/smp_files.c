/* smp-files=DIR: the file system under threads on every CPU at once (issue 16: drivers and the
 * VFS safe when requests come from several CPUs).
 *
 * In a fresh directory under DIR, one thread per CPU (up to 4, each pinned to its own CPU):
 * - creates its own files of sizes from 1 byte to 64 KiB (O_CREAT|O_EXCL), writes a pattern
 *   that names the thread and the file, fsyncs every 8th, reads each back through a new
 *   descriptor and compares, renames it into a name shared by all threads' namespace,
 *   checks its size with stat, and unlinks it;
 * - writes its own 4 KiB blocks, interleaved with the other threads', into one shared file with
 *   pwrite;
 * - lists the directory while the others create and delete in it (readdir must not fail and
 *   must not show a name twice).
 * Then the main thread checks every block of the shared file, and that the directory holds only
 * that file. Run it on ramfs (DIR=/tmp), on a virtio-fs root or share, on ext2. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define MAX_WORKERS 4
#define FILES 60
#define BLOCKS 48
#define BLOCK 4096

static char dir[512];
static int shared_fd;

struct files_worker {
    int index, cpu;
};

static unsigned char pattern(int worker, int file, size_t at) {
    return (unsigned char)(worker * 67 + file * 13 + at * 7 + (at >> 9));
}

/* The directory's entries, each must be unique; returns how many there were. */
static int list_once(void) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    char seen[32][256];
    int count = 0, listed = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        listed++;
        for (int i = 0; i < count; i++) {
            if (!strcmp(seen[i], e->d_name)) {
                printf("FAIL smp-files: readdir of %s gave %s twice\n", dir, e->d_name);
                exit(1);
            }
        }
        if (count < 32) {
            snprintf(seen[count++], sizeof seen[0], "%s", e->d_name);
        }
    }
    CHECK(errno == 0);
    CHECK(closedir(d) == 0);
    return listed;
}

static void *files_worker(void *arg) {
    struct files_worker *w = arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(w->cpu, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0 && sched_getcpu() == w->cpu);
    enum { MOST = 65536 };
    unsigned char *buffer = malloc(MOST), *back = malloc(MOST);
    CHECK(buffer != NULL && back != NULL);
    char path[600], renamed[600];
    for (int f = 0; f < FILES; f++) {
        size_t size = f == 0 ? 1 : (size_t)(f * 1093) % MOST + 1;
        for (size_t i = 0; i < size; i++) {
            buffer[i] = pattern(w->index, f, i);
        }
        snprintf(path, sizeof path, "%s/w%d-%d", dir, w->index, f);
        snprintf(renamed, sizeof renamed, "%s/done-%d-%d", dir, f, w->index);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        CHECK(fd >= 0);
        CHECK(write(fd, buffer, size) == (ssize_t)size);
        if (f % 8 == 0) {
            CHECK(fsync(fd) == 0);
        }
        CHECK(close(fd) == 0);
        fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        size_t got = 0;
        ssize_t n;
        while ((n = read(fd, back + got, MOST - got)) > 0) {
            got += (size_t)n;
        }
        CHECK(n == 0 && got == size);
        CHECK(close(fd) == 0);
        if (memcmp(buffer, back, size) != 0) {
            printf("FAIL smp-files: %s (%zu bytes) read back different on CPU %d\n", path, size, w->cpu);
            exit(1);
        }
        CHECK(rename(path, renamed) == 0);
        struct stat st;
        CHECK(stat(renamed, &st) == 0 && st.st_size == (off_t)size && S_ISREG(st.st_mode));
        FAILS(stat(path, &st), ENOENT);
        CHECK(unlink(renamed) == 0);
        if (f < BLOCKS) {
            for (size_t i = 0; i < BLOCK; i++) {
                buffer[i] = pattern(w->index, 1000 + f, i);
            }
            off_t at = ((off_t)f * MAX_WORKERS + w->index) * BLOCK;
            CHECK(pwrite(shared_fd, buffer, BLOCK, at) == BLOCK);
        }
        if (f % 10 == 0) {
            list_once();
        }
    }
    free(buffer);
    free(back);
    return NULL;
}

static void smp_files(const char *parent) {
    int n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int workers = n < MAX_WORKERS ? n : MAX_WORKERS;
    snprintf(dir, sizeof dir, "%s/smp-files-%d", strcmp(parent, "/") ? parent : "", (int)getpid());
    CHECK(mkdir(dir, 0755) == 0);
    char shared[600];
    snprintf(shared, sizeof shared, "%s/shared", dir);
    shared_fd = open(shared, O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(shared_fd >= 0);
    pthread_t ids[MAX_WORKERS];
    struct files_worker args[MAX_WORKERS];
    for (int i = 0; i < workers; i++) {
        args[i] = (struct files_worker){.index = i, .cpu = i * n / workers};
        CHECK(pthread_create(&ids[i], NULL, files_worker, &args[i]) == 0);
    }
    for (int i = 0; i < workers; i++) {
        CHECK(pthread_join(ids[i], NULL) == 0);
    }
    CHECK(fsync(shared_fd) == 0);
    struct stat st;
    CHECK(fstat(shared_fd, &st) == 0);
    CHECK(st.st_size == (off_t)(BLOCKS - 1) * MAX_WORKERS * BLOCK + (off_t)workers * BLOCK);
    static unsigned char block[BLOCK];
    for (int f = 0; f < BLOCKS; f++) {
        for (int w = 0; w < workers; w++) {
            CHECK(pread(shared_fd, block, BLOCK, ((off_t)f * MAX_WORKERS + w) * BLOCK) == BLOCK);
            for (size_t i = 0; i < BLOCK; i++) {
                if (block[i] != pattern(w, 1000 + f, i)) {
                    printf("FAIL smp-files: block %d of worker %d, byte %zu differs\n", f, w, i);
                    exit(1);
                }
            }
        }
    }
    CHECK(close(shared_fd) == 0);
    CHECK(list_once() == 1);
    CHECK(unlink(shared) == 0);
    CHECK(rmdir(dir) == 0);
    printf("ok smp-files %d threads on %d CPUs: %d files each written, read back, renamed, removed; %d shared blocks intact\n",
           workers, n, FILES, BLOCKS * workers);
}

int smp_files_family_run(const char *f) {
    if (strncmp(f, "smp-files=", 10) != 0) {
        return 0;
    }
    smp_files(f + 10);
    return 1;
}
