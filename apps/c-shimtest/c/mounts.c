/* shimtest's mounts family (issue 18): mount(2) and umount2(2) as Linux has them (tmpfs, bind
 * mounts, per-mount read-only and noexec, propagation types, errors), and the rule that a
 * running program's file has no writers (ETXTBSY both ways). Needs execve (run it under
 * elf-runner) and a writable /tmp; runs as root. Works unmodified on Linux as root. */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

extern char **environ;

static void put(const char *path, const char *text) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(close(fd) == 0);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int read_only(const char *path) {
    struct statvfs s;
    CHECK(statvfs(path, &s) == 0);
    return (s.f_flag & ST_RDONLY) != 0;
}

/* Copies the running program to `to`, mode 0755. */
static void copy_self(const char *to) {
    int in = open("/proc/self/exe", O_RDONLY), out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0755);
    CHECK(in >= 0 && out >= 0);
    static char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) CHECK(write(out, buf, (size_t)n) == n);
    CHECK(n == 0 && close(in) == 0 && close(out) == 0);
}

int mounts_family_run(const char *f) {
    if (strcmp(f, "mounts")) return 0;
    const char *m = "/tmp/mounts-m", *src = "/tmp/mounts-src", *dst = "/tmp/mounts-dst";
    const char *prog = "/tmp/mounts-m/prog";
    CHECK(mkdir(m, 0755) == 0 && mkdir(src, 0755) == 0 && mkdir(dst, 0755) == 0);
    put("/tmp/mounts-m/under", "under");
    struct stat parent, top, a, b;
    CHECK(stat(m, &parent) == 0);

    /* A new tmpfs: its own device, its root's mode from the options, the directory below hidden. */
    FAILS(mount("none", m, "no-such-fs", 0, NULL), ENODEV);
    FAILS(mount("none", "/tmp/mounts-none", "tmpfs", 0, NULL), ENOENT);
    FAILS(mount("none", m, "tmpfs", 0, "colour=blue"), EINVAL);
    CHECK(mount("none", m, "tmpfs", 0, "mode=0700,size=1m") == 0);
    CHECK(stat(m, &top) == 0);
    CHECK(top.st_dev != parent.st_dev && (top.st_mode & 07777) == 0700);
    CHECK(!exists("/tmp/mounts-m/under"));
    FAILS(rmdir(m), EBUSY);
    FAILS(rename(m, "/tmp/mounts-moved"), EBUSY);
    put("/tmp/mounts-m/f", "in tmpfs");
    FAILS(rename("/tmp/mounts-m/f", "/tmp/mounts-f"), EXDEV);
    FAILS(umount2(m, 0x100), EINVAL);
    CHECK(mount(NULL, m, NULL, MS_PRIVATE, NULL) == 0);
    FAILS(mount(NULL, src, NULL, MS_PRIVATE, NULL), EINVAL);

    /* Read-only and back, by remounting. */
    CHECK(mount(NULL, m, NULL, MS_REMOUNT | MS_RDONLY, NULL) == 0);
    CHECK(read_only("/tmp/mounts-m/f"));
    FAILS(open("/tmp/mounts-m/f", O_WRONLY), EROFS);
    FAILS(mkdir("/tmp/mounts-m/d", 0755), EROFS);
    FAILS(unlink("/tmp/mounts-m/f"), EROFS);
    FAILS(chmod("/tmp/mounts-m/f", 0600), EROFS);
    CHECK(mount(NULL, m, NULL, MS_REMOUNT, NULL) == 0);
    CHECK(!read_only("/tmp/mounts-m/f"));
    CHECK(unlink("/tmp/mounts-m/f") == 0);

    /* Bind mounts: the same files at a second place; a read-only view of a writable tree. */
    put("/tmp/mounts-src/a", "bound");
    put("/tmp/mounts-dst/hidden", "under");
    CHECK(mount(src, dst, NULL, MS_BIND, NULL) == 0);
    CHECK(stat("/tmp/mounts-src/a", &a) == 0 && stat("/tmp/mounts-dst/a", &b) == 0);
    CHECK(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    CHECK(!exists("/tmp/mounts-dst/hidden"));
    FAILS(rmdir(dst), EBUSY);
    FAILS(link("/tmp/mounts-dst/a", "/tmp/mounts-src/b"), EXDEV);
    CHECK(mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0);
    FAILS(open("/tmp/mounts-dst/a", O_WRONLY), EROFS);
    CHECK(!read_only("/tmp/mounts-src/a"));
    put("/tmp/mounts-src/a", "changed");
    char text[16] = {0};
    int fd = open("/tmp/mounts-dst/a", O_RDONLY);
    CHECK(fd >= 0 && read(fd, text, sizeof text) == 7 && !memcmp(text, "changed", 7) && close(fd) == 0);
    CHECK(umount2(dst, 0) == 0);
    FAILS(umount2(dst, 0), EINVAL);
    CHECK(exists("/tmp/mounts-dst/hidden"));

    /* ETXTBSY: a file open for writing does not run; the running program's file takes no writer. */
    copy_self(prog);
    int writer = open(prog, O_WRONLY);
    CHECK(writer >= 0);
    char *argv[] = {(char *)prog, "none", NULL};
    FAILS(execve(prog, argv, environ), ETXTBSY);
    CHECK(close(writer) == 0);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n] = 0;
    FAILS(open(self, O_WRONLY), ETXTBSY);
    FAILS(open(self, O_RDWR), ETXTBSY);
    FAILS(open(self, O_RDONLY | O_TRUNC), ETXTBSY);
    FAILS(truncate(self, 0), ETXTBSY);
    fd = open(self, O_RDONLY);
    CHECK(fd >= 0 && close(fd) == 0);

    /* noexec: nothing runs from the mount. */
    CHECK(mount(NULL, m, NULL, MS_REMOUNT | MS_NOEXEC, NULL) == 0);
    FAILS(execve(prog, argv, environ), EACCES);
    CHECK(umount2(m, MNT_DETACH) == 0);
    CHECK(exists("/tmp/mounts-m/under"));

    CHECK(unlink("/tmp/mounts-m/under") == 0 && rmdir(m) == 0);
    CHECK(unlink("/tmp/mounts-src/a") == 0 && rmdir(src) == 0);
    CHECK(unlink("/tmp/mounts-dst/hidden") == 0 && rmdir(dst) == 0);
    printf("ok mounts\n");
    return 1;
}
