/* shimtest's xattr family: extended attributes through the C library's calls (issue 18):
 * values and lists with the size-0 query and ERANGE, XATTR_CREATE/XATTR_REPLACE, the path,
 * l* and f* forms, names and sizes checked, the change time, and an unprivileged caller's
 * limits. In /tmp; runs as root and returns as root. Works unmodified on Linux (ext4, tmpfs). */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms) {
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

static int ctime_after(const struct stat *a, const struct stat *b) {
    return b->st_ctim.tv_sec > a->st_ctim.tv_sec ||
           (b->st_ctim.tv_sec == a->st_ctim.tv_sec && b->st_ctim.tv_nsec > a->st_ctim.tv_nsec);
}

/* Whether the NUL-separated `list` of `len` bytes holds `name`. */
static int listed(const char *list, ssize_t len, const char *name) {
    for (ssize_t at = 0; at < len; at += (ssize_t)strlen(list + at) + 1)
        if (!strcmp(list + at, name)) return 1;
    return 0;
}

int xattr_family_run(const char *f) {
    if (strcmp(f, "xattr")) return 0;
    const char *file = "/tmp/xattr-file", *link = "/tmp/xattr-link", *dir = "/tmp/xattr-dir";
    unlink(file);
    unlink(link);
    rmdir(dir);
    int fd = open(file, O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "data", 4) == 4);
    struct stat before, after;
    CHECK(stat(file, &before) == 0);
    sleep_ms(20);
    CHECK(setxattr(file, "user.colour", "blue", 4, 0) == 0);
    CHECK(stat(file, &after) == 0);
    CHECK(ctime_after(&before, &after));
    char value[128];
    CHECK(getxattr(file, "user.colour", NULL, 0) == 4);
    CHECK(getxattr(file, "user.colour", value, sizeof value) == 4 && !memcmp(value, "blue", 4));
    FAILS(getxattr(file, "user.colour", value, 2), ERANGE);
    FAILS(getxattr(file, "user.none", value, sizeof value), ENODATA);
    FAILS(setxattr(file, "user.colour", "red", 3, XATTR_CREATE), EEXIST);
    FAILS(setxattr(file, "user.shape", "round", 5, XATTR_REPLACE), ENODATA);
    FAILS(setxattr(file, "user.colour", "red", 3, XATTR_CREATE | XATTR_REPLACE), EEXIST);
    FAILS(setxattr(file, "user.shape", "round", 5, XATTR_CREATE | XATTR_REPLACE), ENODATA);
    CHECK(setxattr(file, "user.colour", "red", 3, XATTR_REPLACE) == 0);
    CHECK(setxattr(file, "user.empty", "", 0, XATTR_CREATE) == 0);
    CHECK(getxattr(file, "user.empty", value, sizeof value) == 0);
    /* A value of 700 bytes (room for it in a 1 KiB ext2 attribute block), through the
     * descriptor. */
    static char big[700], back[700];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7 + 1);
    CHECK(fsetxattr(fd, "user.big", big, sizeof big, 0) == 0);
    CHECK(fgetxattr(fd, "user.big", back, sizeof back) == (ssize_t)sizeof big && !memcmp(big, back, sizeof big));
    char list[512];
    ssize_t need = listxattr(file, NULL, 0);
    CHECK(need == (ssize_t)(strlen("user.colour") + strlen("user.empty") + strlen("user.big") + 3));
    FAILS(listxattr(file, list, (size_t)need - 1), ERANGE);
    CHECK(flistxattr(fd, list, sizeof list) == need);
    CHECK(listed(list, need, "user.colour") && listed(list, need, "user.empty") && listed(list, need, "user.big"));
    CHECK(fremovexattr(fd, "user.big") == 0);
    FAILS(fremovexattr(fd, "user.big"), ENODATA);
    CHECK(removexattr(file, "user.empty") == 0);
    CHECK(listxattr(file, list, sizeof list) == (ssize_t)strlen("user.colour") + 1);
    /* Names, sizes and flags are checked; bad pointers are EFAULT. */
    FAILS(getxattr(file, "", value, sizeof value), ERANGE);
    static char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    memcpy(long_name, "user.", 5);
    FAILS(getxattr(file, long_name, value, sizeof value), ERANGE);
    FAILS(setxattr(file, "colour", "x", 1, 0), EOPNOTSUPP);
    FAILS(setxattr(file, "user.", "x", 1, 0), EINVAL);
    FAILS(setxattr(file, "user.x", "x", 1, 4), EINVAL);
    FAILS(setxattr(file, "user.huge", big, 65537, 0), E2BIG); /* checked before the copy */
    FAILS(getxattr(file, "user.colour", (void *)8, 16), EFAULT);
    FAILS(setxattr(file, "user.x", (void *)8, 16, 0), EFAULT);
    FAILS(getxattr("/tmp/xattr-missing", "user.colour", value, sizeof value), ENOENT);
    FAILS(fgetxattr(-1, "user.colour", value, sizeof value), EBADF);
    int path_fd = open(file, O_PATH);
    CHECK(path_fd >= 0);
    FAILS(fgetxattr(path_fd, "user.colour", value, sizeof value), EBADF);
    close(path_fd);
    /* Symlinks: user.* only on what they point to; directories hold them too. */
    CHECK(symlink("xattr-file", link) == 0);
    FAILS(lsetxattr(link, "user.l", "x", 1, 0), EPERM);
    FAILS(lgetxattr(link, "user.colour", value, sizeof value), ENODATA);
    CHECK(getxattr(link, "user.colour", value, sizeof value) == 3 && !memcmp(value, "red", 3));
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(setxattr(dir, "user.d", "D", 1, 0) == 0);
    CHECK(getxattr(dir, "user.d", value, sizeof value) == 1);
    /* An unprivileged caller (uid 1000): the file's permissions decide for user.*; trusted.*
     * is invisible and security.* unwritable. */
    CHECK(chmod(file, 0644) == 0);
    CHECK(setegid(1000) == 0 && seteuid(1000) == 0);
    CHECK(getxattr(file, "user.colour", value, sizeof value) == 3);
    FAILS(setxattr(file, "user.colour", "mine", 4, 0), EACCES);
    FAILS(removexattr(file, "user.colour"), EACCES);
    FAILS(getxattr(file, "trusted.t", value, sizeof value), ENODATA);
    FAILS(setxattr(file, "trusted.t", "x", 1, 0), EPERM);
    FAILS(setxattr(file, "security.s", "x", 1, 0), EPERM);
    FAILS(setxattr("/tmp", "user.sticky", "x", 1, 0), EPERM);
    CHECK(seteuid(0) == 0 && setegid(0) == 0);
    CHECK(chmod(file, 0600) == 0);
    CHECK(setegid(1000) == 0 && seteuid(1000) == 0);
    FAILS(getxattr(file, "user.colour", value, sizeof value), EACCES);
    CHECK(seteuid(0) == 0 && setegid(0) == 0);
    close(fd);
    CHECK(unlink(link) == 0 && unlink(file) == 0 && rmdir(dir) == 0);
    printf("ok xattr\n");
    return 1;
}
