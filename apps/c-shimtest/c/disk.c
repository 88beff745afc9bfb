/* shimtest's disk family: /dev/vda as a C program sees a disk (pread/pwrite of every alignment
 * and size up to 4 MiB with O_DIRECT, fstat, the BLK ioctls, fsync), /dev/vdb read-only.
 *
 * The host (tests/tests/disk.rs) fills vda with pattern_a and checks afterwards that exactly
 * the ranges of `writes` below hold pattern_b, so both sides must keep these lists in step. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <sys/mount.h> /* musl: the BLK* ioctl numbers */
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024 * 1024)

/* What the host wrote at byte `i` of vda. */
static uint8_t pattern_a(uint64_t i) { return (uint8_t)((i >> 9) * 7 + i); }
/* What the guest writes at byte `i`. */
static uint8_t pattern_b(uint64_t i) { return (uint8_t)(i * 131 + 17); }

static const struct { uint64_t offset, len; } reads[] = {
    {0, 1}, {1, 511}, {511, 2}, {512, 512}, {4095, 4097}, {4096, 4096}, {65537, 65535},
    {MIB - 3, 3 * 4096 + 5}, {3 * MIB + 512, MIB}, {0, 4 * MIB}, {12 * MIB + 1, 4 * MIB - 1},
};
/* Keep in step with WRITES in tests/tests/disk.rs. */
static const struct { uint64_t offset, len; } writes[] = {
    {4 * MIB, 1}, {4 * MIB + 4097, 511}, {4 * MIB + 8703, 513}, {4 * MIB + 16384, 4096},
    {4 * MIB + 65539, 65536}, {5 * MIB, MIB}, {6 * MIB + 512, MIB + 1000}, {8 * MIB, 4 * MIB},
};

static uint8_t *buffer(size_t len) {
    void *p = NULL;
    CHECK(posix_memalign(&p, 4096, len + 4096) == 0);
    return p;
}

void disk_family(void) {
    int fd = open("/dev/vda", O_RDWR | O_DIRECT);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && S_ISBLK(st.st_mode));
    uint64_t bytes = 0;
    int sector = 0;
    CHECK(ioctl(fd, BLKGETSIZE64, &bytes) == 0 && bytes == 16 * MIB);
    CHECK(ioctl(fd, BLKSSZGET, &sector) == 0 && sector == 512);
    CHECK(lseek(fd, 0, SEEK_END) == (off_t)bytes);
    uint8_t *buf = buffer(4 * MIB);
    for (size_t r = 0; r < sizeof reads / sizeof reads[0]; r++) {
        /* Into an aligned buffer and one a byte off, as O_DIRECT users and others do. */
        for (int skew = 0; skew < 2; skew++) {
            uint8_t *into = buf + skew;
            memset(into, 0xee, reads[r].len);
            CHECK(pread(fd, into, reads[r].len, reads[r].offset) == (ssize_t)reads[r].len);
            for (uint64_t i = 0; i < reads[r].len; i++) {
                if (into[i] != pattern_a(reads[r].offset + i)) {
                    printf("FAIL read %zu skew %d: byte %llu is %u, not %u\n", r, skew, (unsigned long long)i, into[i],
                           pattern_a(reads[r].offset + i));
                    exit(1);
                }
            }
        }
    }
    for (size_t w = 0; w < sizeof writes / sizeof writes[0]; w++) {
        for (uint64_t i = 0; i < writes[w].len; i++) buf[i] = pattern_b(writes[w].offset + i);
        CHECK(pwrite(fd, buf, writes[w].len, writes[w].offset) == (ssize_t)writes[w].len);
    }
    /* Read back around each write: its bytes and its neighbours'. */
    for (size_t w = 0; w < sizeof writes / sizeof writes[0]; w++) {
        uint64_t from = writes[w].offset - 1, len = writes[w].len + 2;
        CHECK(pread(fd, buf, len, from) == (ssize_t)len);
        CHECK(buf[1] == pattern_b(writes[w].offset) && buf[len - 2] == pattern_b(writes[w].offset + writes[w].len - 1));
        for (uint64_t i = 1; i + 1 < len; i++) CHECK(buf[i] == pattern_b(from + i));
    }
    CHECK(fsync(fd) == 0);
    /* The end of the disk: short transfers, then end of file and ENOSPC. */
    CHECK(pread(fd, buf, 4096, bytes - 512) == 512);
    CHECK(pread(fd, buf, 4096, bytes) == 0);
    FAILS(pwrite(fd, buf, 512, bytes), ENOSPC);
    FAILS(pread(fd, buf, 512, -512), EINVAL);
    CHECK(close(fd) == 0);

    /* vdb is attached read-only. */
    int ro = open("/dev/vdb", O_RDONLY);
    CHECK(ro >= 0);
    int flag = 0;
    CHECK(ioctl(ro, BLKROGET, &flag) == 0 && flag == 1);
    CHECK(pread(ro, buf, 512, 0) == 512);
    CHECK(close(ro) == 0);
    int rw = open("/dev/vdb", O_RDWR);
    if (rw >= 0) {
        FAILS(pwrite(rw, buf, 512, 0), EROFS);
        close(rw);
    } else {
        CHECK(errno == EROFS || errno == EACCES);
    }
    FAILS(open("/dev/vdz", O_RDONLY), ENOENT);
    free(buf);
    printf("ok disk\n");
}

/* ---- ext2 families: a volume mounted at /data (kernel option mount=ext2:vda:/data) ---- */

#include <dirent.h>
#include <sys/statvfs.h>

/* The byte at offset `i` of guest-written file number `n` (tests/tests/ext2.rs: file_byte). */
static uint8_t file_byte(int n, uint64_t i) { return (uint8_t)((i * 2654435761u >> 11) + (uint64_t)n * 37 + i % 13); }

static void write_file(const char *path, int n, uint64_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    static uint8_t chunk[65536];
    for (uint64_t at = 0; at < len;) {
        uint64_t piece = len - at < sizeof chunk ? len - at : sizeof chunk;
        for (uint64_t i = 0; i < piece; i++) chunk[i] = file_byte(n, at + i);
        CHECK(write(fd, chunk, piece) == (ssize_t)piece);
        at += piece;
    }
    CHECK(close(fd) == 0);
}

static void check_file(const char *path, int n, uint64_t len) {
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == len);
    static uint8_t chunk[65536];
    for (uint64_t at = 0; at < len;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        CHECK(got > 0);
        for (ssize_t i = 0; i < got; i++) {
            if (chunk[i] != file_byte(n, at + i)) {
                printf("FAIL %s: byte %llu\n", path, (unsigned long long)(at + i));
                exit(1);
            }
        }
        at += got;
    }
    CHECK(close(fd) == 0);
}

/* Reads what the host put on the volume, then writes a tree the host checks with e2fsck and
 * debugfs (keep in step with tests/tests/ext2.rs). */
void ext2_family(void) {
    char buf[256];
    int fd = open("/data/host/hello.txt", O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 20 && memcmp(buf, "hello from the host\n", 20) == 0 && close(fd) == 0);
    check_file("/data/host/big.bin", 9, 3 * MIB + 17);

    CHECK(mkdir("/data/guest", 0755) == 0);
    write_file("/data/guest/small", 1, 6);
    write_file("/data/guest/f1k", 2, 1000);
    write_file("/data/guest/f300k", 3, 300 * 1024);
    write_file("/data/guest/f5m", 4, 5 * MIB + 3);
    CHECK(symlink("small", "/data/guest/short-link") == 0);
    char long_target[201];
    memset(long_target, 'x', 200);
    long_target[200] = 0;
    CHECK(symlink(long_target, "/data/guest/long-link") == 0);
    CHECK(readlink("/data/guest/long-link", buf, sizeof buf) == 200 && memcmp(buf, long_target, 200) == 0);
    CHECK(link("/data/guest/f1k", "/data/guest/hard") == 0);
    struct stat st;
    CHECK(stat("/data/guest/f1k", &st) == 0 && st.st_nlink == 2);
    CHECK(rename("/data/guest/f300k", "/data/guest/renamed") == 0);
    CHECK(truncate("/data/guest/f5m", 2 * MIB + 123) == 0);
    write_file("/data/guest/gone", 5, 70000);
    CHECK(unlink("/data/guest/gone") == 0);
    CHECK(mkdir("/data/guest/d1", 0755) == 0 && mkdir("/data/guest/d1/d2", 0755) == 0 && mkdir("/data/guest/d1/d2/d3", 0755) == 0);
    write_file("/data/guest/d1/d2/d3/deep", 6, 4096);
    CHECK(rename("/data/guest/d1", "/data/guest/moved") == 0);
    CHECK(mkdir("/data/guest/empty", 0755) == 0 && rmdir("/data/guest/empty") == 0);
    CHECK(mkdir("/data/guest/many", 0755) == 0);
    for (int i = 0; i < 300; i++) {
        snprintf(buf, sizeof buf, "/data/guest/many/entry-with-a-longish-name-%03d", i);
        write_file(buf, 7, (uint64_t)i);
    }
    for (int i = 0; i < 300; i += 2) {
        snprintf(buf, sizeof buf, "/data/guest/many/entry-with-a-longish-name-%03d", i);
        CHECK(unlink(buf) == 0);
    }
    /* Reading back through the kernel before the host looks. */
    check_file("/data/guest/renamed", 3, 300 * 1024);
    check_file("/data/guest/f5m", 4, 2 * MIB + 123);
    check_file("/data/guest/moved/d2/d3/deep", 6, 4096);
    FAILS(open("/data/guest/gone", O_RDONLY), ENOENT);
    struct statvfs vfs;
    CHECK(statvfs("/data", &vfs) == 0 && vfs.f_bfree > 0 && vfs.f_files > 0);
    sync();
    printf("ok ext2\n");
}

/* Writes and fsyncs a file, says so, then waits to be killed: what fsync made durable must be
 * in the image afterwards. */
void ext2_sync_family(void) {
    write_file("/data/durable", 8, 256 * 1024 + 5);
    int fd = open("/data/durable", O_RDWR);
    /* Markers around the fsync: the host test counts the FLUSH requests QEMU completed
       between them in its trace. */
    printf("fsync of durable starts\n");
    fflush(stdout);
    CHECK(fd >= 0 && fsync(fd) == 0);
    printf("fsync of durable returned\n");
    fflush(stdout);
    /* As POSIX asks of a careful program: the new name is durable once its directory is. */
    int dir = open("/data", O_RDONLY | O_DIRECTORY);
    CHECK(dir >= 0 && fsync(dir) == 0 && close(dir) == 0);
    /* More data, never synced: it may or may not survive. */
    write_file("/data/volatile", 9, 100 * 1024);
    printf("synced\n");
    fflush(stdout);
    for (;;) sleep(1000);
}

/* Fills the volume: a short write, then ENOSPC; room again after a delete. */
void ext2_full_family(void) {
    static uint8_t chunk[65536];
    memset(chunk, 0xab, sizeof chunk);
    uint64_t total = 0;
    int files = 0, full = 0;
    char name[64];
    while (!full) {
        snprintf(name, sizeof name, "/data/fill-%d", files);
        int fd = open(name, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) {
            CHECK(errno == ENOSPC); /* no inode or directory block left */
            break;
        }
        files++;
        for (int i = 0; i < 16 && !full; i++) {
            ssize_t n = write(fd, chunk, sizeof chunk);
            if (n == (ssize_t)sizeof chunk) {
                total += (uint64_t)n;
                continue;
            }
            if (n > 0) { /* short: the next one must fail */
                total += (uint64_t)n;
                n = write(fd, chunk, sizeof chunk);
            }
            CHECK(n == -1 && errno == ENOSPC);
            full = 1;
        }
        CHECK(close(fd) == 0);
    }
    CHECK(total > 0 && files > 0);
    CHECK(unlink("/data/fill-0") == 0);
    write_file("/data/after", 10, 4096);
    check_file("/data/after", 10, 4096);
    sync();
    printf("ok ext2full %llu bytes in %d files\n", (unsigned long long)total, files);
}

/* A read-only disk: reads work, every change is EROFS. */
void ext2_ro_family(void) {
    char buf[32];
    int fd = open("/data/host/hello.txt", O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 20 && close(fd) == 0);
    FAILS(open("/data/host/hello.txt", O_WRONLY), EROFS);
    FAILS(open("/data/new", O_WRONLY | O_CREAT, 0644), EROFS);
    FAILS(mkdir("/data/dir", 0755), EROFS);
    FAILS(unlink("/data/host/hello.txt"), EROFS);
    FAILS(rename("/data/host/hello.txt", "/data/x"), EROFS);
    printf("ok ext2ro\n");
}

/* Walks a possibly corrupt volume, reading every file: errors are counted, never fatal. */
static void walk(const char *dir, int depth, int *entries, int *errors) {
    if (depth > 16) return;
    DIR *d = opendir(dir);
    if (!d) {
        (*errors)++;
        return;
    }
    struct dirent *e;
    char path[512];
    static char chunk[8192];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        (*entries)++;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            (*errors)++;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            walk(path, depth + 1, entries, errors);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(path, O_RDONLY);
            if (fd < 0) {
                (*errors)++;
                continue;
            }
            ssize_t n;
            while ((n = read(fd, chunk, sizeof chunk)) > 0) {}
            if (n < 0) (*errors)++;
            close(fd);
        }
    }
    closedir(d);
}

void ext2_walk_family(void) {
    int entries = 0, errors = 0;
    walk("/data", 0, &entries, &errors);
    /* And a write, which a damaged volume may refuse. */
    int fd = open("/data/new-file", O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) {
        if (write(fd, "x", 1) != 1) errors++;
        close(fd);
    } else {
        errors++;
    }
    printf("ok ext2walk %d entries, %d errors\n", entries, errors);
}
