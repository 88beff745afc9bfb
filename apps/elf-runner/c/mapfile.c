/* mapfile.c: mmap of files on whatever file system holds DIR, as Linux behaves.
 *
 *   mapfile DIR copy    the checks every file system passes: a MAP_SHARED mapping at a page
 *                       offset that is not a multiple of 2 MiB reads the file's bytes over
 *                       three 2 MiB chunks, zeros after the end of the file in its last page;
 *                       system calls take buffers inside a mapping (read from it, fill it);
 *                       stores reach the file by msync and munmap; Linux's EACCES cases
 *                       (mmap and mprotect).
 *   mapfile DIR direct  the same, and each mapping is the file's own pages (a virtio-fs DAX
 *                       window): a store shows to pread at once (no msync), a pwrite shows in
 *                       the mapping at once, and 20 rounds of mapping and unmapping three
 *                       chunks keep being direct (the window's slots come back).
 *
 * DIR/host.bin must hold HOST_SIZE bytes, byte i being pattern(i) (the test writes it on the
 * host). Creates DIR/rw.bin (left holding 'M' at 10 and 'P' at 4101, for the host to check)
 * and DIR/copy.bin. Prints "mapfile: ok" when every check passed, "FAIL ..." otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096L
#define MIB (1024L * 1024)
#define HOST_SIZE (5 * MIB + 100)

static int failures;

#define CHECK(cond, what)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("FAIL %s (line %d, errno %d)\n", what, __LINE__, errno);          \
            failures++;                                                              \
        }                                                                            \
    } while (0)

static unsigned char pattern(long i) {
    return (unsigned char)(i % 251 + i / PAGE);
}

static char path_buf[4][512];

static const char *in_dir(int slot, const char *dir, const char *name) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", dir, name);
    return path_buf[slot];
}

static char byte_at(int fd, long offset) {
    char c = 0;
    if (pread(fd, &c, 1, offset) != 1) return 0;
    return c;
}

/* The host's file, read through a mapping spanning three 2 MiB chunks, and its last page. */
static void read_host_file(const char *dir) {
    int fd = open(in_dir(0, dir, "host.bin"), O_RDONLY);
    CHECK(fd >= 0, "open host.bin");
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size == HOST_SIZE, "host.bin has its size");
    long offset = MIB + PAGE, len = 3 * MIB;
    unsigned char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, offset);
    CHECK(m != MAP_FAILED, "mmap of host.bin");
    if (m == MAP_FAILED) return;
    long wrong = -1;
    for (long i = 0; i < len && wrong < 0; i++)
        if (m[i] != pattern(offset + i)) wrong = i;
    CHECK(wrong < 0, "the mapping holds the file's bytes");
    if (wrong >= 0) printf("mapfile: byte %ld of the mapping is %d, not %d\n", offset + wrong, m[wrong], pattern(offset + wrong));
    CHECK(munmap(m, len) == 0, "munmap");
    /* The last page: the file's 100 bytes, then zeros (the page past it is not touched:
     * Linux raises SIGBUS there). */
    unsigned char *tail = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, 5 * MIB);
    CHECK(tail != MAP_FAILED, "mmap of the last page");
    if (tail != MAP_FAILED) {
        int ok = 1;
        for (long i = 0; i < PAGE; i++) ok &= tail[i] == (i < 100 ? pattern(5 * MIB + i) : 0);
        CHECK(ok, "the last page: the file's bytes, then zeros");
        CHECK(munmap(tail, 2 * PAGE) == 0, "munmap of the last page");
    }
    errno = 0;
    CHECK(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EACCES,
          "a writable shared mapping of a read-only descriptor: EACCES");
    CHECK(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) != MAP_FAILED, "a private writable one is fine");
    void *ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    errno = 0;
    CHECK(ro != MAP_FAILED && mprotect(ro, PAGE, PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
          "mprotect to writable of a shared mapping of a read-only descriptor: EACCES");
    CHECK(ro != MAP_FAILED && munmap(ro, PAGE) == 0, "munmap of the read-only mapping");
    close(fd);
    int wronly = open(in_dir(0, dir, "host.bin"), O_WRONLY);
    errno = 0;
    CHECK(wronly >= 0 && mmap(NULL, PAGE, PROT_READ, MAP_SHARED, wronly, 0) == MAP_FAILED && errno == EACCES,
          "a mapping of a write-only descriptor: EACCES");
    close(wronly);
}

/* A file the program writes through a shared mapping. */
static void write_through_mapping(const char *dir, int direct) {
    int fd = open(in_dir(0, dir, "rw.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "create rw.bin");
    char block[PAGE];
    memset(block, 'a', sizeof block);
    for (int i = 0; i < 3; i++) CHECK(write(fd, block, PAGE) == PAGE, "fill rw.bin");
    char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED && m[0] == 'a', "mmap of rw.bin");
    if (m == MAP_FAILED) return;
    m[10] = 'M';
    if (direct) {
        CHECK(byte_at(fd, 10) == 'M', "a store shows to pread at once");
        CHECK(pwrite(fd, "P", 1, PAGE + 5) == 1 && m[PAGE + 5] == 'P', "a pwrite shows in the mapping at once");
    } else {
        CHECK(pwrite(fd, "P", 1, PAGE + 5) == 1, "pwrite");
        m[PAGE + 5] = 'P'; /* a copy may not see the pwrite; the store makes them agree */
    }
    /* System calls with buffers inside the mapping: write(2) from it, pread(2) into it. */
    int copy = open(in_dir(1, dir, "copy.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(copy >= 0 && write(copy, m, 3 * PAGE) == 3 * PAGE, "write(2) from the mapping");
    CHECK(byte_at(copy, 10) == 'M' && byte_at(copy, PAGE + 5) == 'P', "what write(2) took from the mapping");
    int host = open(in_dir(2, dir, "host.bin"), O_RDONLY);
    CHECK(host >= 0 && pread(host, m + 2 * PAGE, 100, 0) == 100, "pread(2) into the mapping");
    int filled = 1;
    for (int i = 0; i < 100; i++) filled &= (unsigned char)m[2 * PAGE + i] == pattern(i);
    CHECK(filled, "what pread(2) put into the mapping");
    if (direct) CHECK(byte_at(fd, 2 * PAGE + 99) == (char)pattern(99), "pread(2) into the mapping filled the file");
    CHECK(msync(m, 3 * PAGE, MS_SYNC) == 0, "msync");
    CHECK(byte_at(fd, 10) == 'M' && byte_at(fd, 2 * PAGE + 99) == (char)pattern(99), "the file after msync");
    CHECK(munmap(m, 3 * PAGE) == 0, "munmap of rw.bin");
    close(host);
    close(copy);
    /* Rounds of three-chunk mappings: each one the file's own pages again. */
    if (direct) {
        CHECK(ftruncate(fd, 4 * MIB + 2 * PAGE) == 0, "grow rw.bin");
        for (int round = 0; round < 20; round++) {
            char *r = mmap(NULL, 4 * MIB + 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            CHECK(r != MAP_FAILED, "mmap of a round");
            if (r == MAP_FAILED) break;
            r[4 * MIB + PAGE] = (char)('A' + round);
            CHECK(byte_at(fd, 4 * MIB + PAGE) == (char)('A' + round), "a round's store shows at once");
            CHECK(munmap(r, 4 * MIB + 2 * PAGE) == 0, "munmap of a round");
        }
        /* rw.bin's first bytes stay what the host checks. */
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "copy") && strcmp(argv[2], "direct"))) {
        fprintf(stderr, "usage: mapfile DIR copy|direct\n");
        return 2;
    }
    int direct = !strcmp(argv[2], "direct");
    read_host_file(argv[1]);
    write_through_mapping(argv[1], direct);
    if (failures) {
        printf("mapfile: %d checks failed\n", failures);
        return 1;
    }
    printf("mapfile: ok\n");
    return 0;
}
