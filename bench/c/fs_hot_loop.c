/*
 * fs_hot_loop: one file-system call repeated N times, for bench/tools/tb_profile.py (the
 * per-function instruction profile of a hot path). Run it twice under the same image, with
 * N = 0 and N = 1000 or so; the difference of the two logs, divided by N, is one call.
 *
 *   fs_hot_loop MODE N DIR
 *     stat    N stat() of DIR/file-42 in a directory of 100 files
 *     read    N pread() of 4 KiB, sequential over a 4 MiB file (wrapping)
 *     sread   N read() of 4 KiB, sequential over a 4 MiB file (lseek to 0 every 4 MiB)
 *     rread   N pread() of 4 KiB at random offsets of a 4 MiB file
 *     rread64 the same over a 64 MiB file (several leaves of an ext2 block map)
 *     create  N files created (DIR/file-0 ...)
 *     unlink  N files created, then unlinked (profile it against `create N`: the difference
 *             is the unlink)
 *
 * Build: musl-gcc -O2 -static -o fs_hot_loop bench/c/fs_hot_loop.c
 * The QEMU command and the profile: see bench/tools/tb_profile.py's docstring.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: fs_hot_loop stat|read|sread|rread|rread64|create|unlink N DIR\n");
        return 2;
    }
    const char *mode = argv[1];
    long reps = strtol(argv[2], NULL, 10);
    const char *dir = argv[3];
    char name[256];
    static char buf[1 << 16];
    if (!strcmp(mode, "create") || !strcmp(mode, "unlink")) {
        for (long r = 0; r < reps; r++) {
            snprintf(name, sizeof name, "%s/file-%ld", dir, r);
            int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
            if (fd < 0) { perror(name); return 1; }
            close(fd);
        }
        if (!strcmp(mode, "unlink"))
            for (long r = 0; r < reps; r++) {
                snprintf(name, sizeof name, "%s/file-%ld", dir, r);
                if (unlink(name)) { perror(name); return 1; }
            }
    } else if (!strcmp(mode, "stat")) {
        for (int i = 0; i < 100; i++) {
            snprintf(name, sizeof name, "%s/file-%d", dir, i);
            int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
            if (fd < 0) { perror(name); return 1; }
            close(fd);
        }
        struct stat st;
        snprintf(name, sizeof name, "%s/file-%d", dir, 42);
        for (long r = 0; r < reps; r++)
            if (stat(name, &st)) { perror("stat"); return 1; }
    } else if (!strcmp(mode, "read") || !strcmp(mode, "sread") || !strcmp(mode, "rread") || !strcmp(mode, "rread64")) {
        snprintf(name, sizeof name, "%s/data", dir);
        int fd = open(name, O_RDWR | O_CREAT, 0666);
        if (fd < 0) { perror(name); return 1; }
        memset(buf, 7, sizeof buf);
        int big = !strcmp(mode, "rread64");
        int pages = big ? 16384 : 1024;
        for (int i = 0; i < pages / 16; i++)
            if (write(fd, buf, sizeof buf) != sizeof buf) { perror("write"); return 1; }
        unsigned long long x = 0x9e3779b97f4a7c15ull;
        int rnd = !strcmp(mode, "rread") || big;
        if (!strcmp(mode, "sread")) {
            for (long r = 0; r < reps; r++) {
                if (r % 1024 == 0) lseek(fd, 0, SEEK_SET);
                if (read(fd, buf, 4096) != 4096) { perror("read"); return 1; }
            }
            printf("done %s %ld\n", mode, reps);
            return 0;
        }
        for (long r = 0; r < reps; r++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            off_t at = rnd ? (off_t)(x % pages) * 4096 : (r % 1024) * 4096;
            if (pread(fd, buf, 4096, at) != 4096) { perror("pread"); return 1; }
        }
    } else {
        fprintf(stderr, "fs_hot_loop: unknown mode %s\n", mode);
        return 2;
    }
    printf("done %s %ld\n", mode, reps);
    return 0;
}
