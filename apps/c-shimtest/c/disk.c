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
