/* The randomness families: getrandom's flags, /dev/urandom and AT_RANDOM, with and without an
 * entropy source (see libos::random). The bytes are printed so that the QEMU test can compare
 * two boots. */
#include "check.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

static void print_hex(const char *label, const unsigned char *bytes, size_t n) {
    printf("%s: ", label);
    for (size_t i = 0; i < n; i++) printf("%02x", bytes[i]);
    printf("\n");
}

static int urandom_reads(unsigned char *out, size_t n) {
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t got = read(fd, out, n);
    close(fd);
    return got == (ssize_t)n;
}

/* An entropy source seeded the kernel's generator: every flag gives bytes, none blocks. */
static void seeded(void) {
    unsigned char a[16] = {0}, b[16] = {0}, c[16] = {0};
    CHECK(getrandom(a, sizeof a, 0) == sizeof a);
    CHECK(getrandom(b, sizeof b, GRND_NONBLOCK) == sizeof b && memcmp(a, b, sizeof a) != 0);
    CHECK(getrandom(c, sizeof c, GRND_INSECURE) == sizeof c && memcmp(b, c, sizeof b) != 0);
    CHECK(getrandom(c, sizeof c, GRND_RANDOM | GRND_NONBLOCK) == sizeof c);
    FAILS(getrandom(c, sizeof c, GRND_RANDOM | GRND_INSECURE), EINVAL);
    CHECK(urandom_reads(c, sizeof c) && memcmp(b, c, sizeof b) != 0);
    const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
    CHECK(at_random != NULL);
    print_hex("getrandom", a, sizeof a);
    if (at_random) print_hex("at_random", at_random, 16);
    printf("ok random\n");
}

static void on_alarm(int sig) {
    (void)sig;
}

/* No entropy source: GRND_NONBLOCK is EAGAIN, GRND_INSECURE and /dev/urandom give bytes, and a
 * plain getrandom blocks (until a signal interrupts it). */
static void unseeded(void) {
    unsigned char a[16] = {0}, b[16] = {0};
    FAILS(getrandom(a, sizeof a, GRND_NONBLOCK), EAGAIN);
    FAILS(getrandom(a, sizeof a, GRND_RANDOM | GRND_NONBLOCK), EAGAIN);
    CHECK(getrandom(a, sizeof a, GRND_INSECURE) == sizeof a);
    CHECK(getrandom(b, sizeof b, GRND_INSECURE) == sizeof b && memcmp(a, b, sizeof a) != 0);
    CHECK(urandom_reads(b, sizeof b));
    print_hex("insecure", a, sizeof a);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: the blocked call must end with EINTR */
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    printf("blocking in getrandom\n");
    fflush(stdout);
    alarm(1);
    FAILS(getrandom(a, sizeof a, 0), EINTR);
    printf("ok random-unseeded\n");
}

int random_family(const char *f) {
    if (!strcmp(f, "random")) seeded();
    else if (!strcmp(f, "random-unseeded")) unseeded();
    else return 0;
    return 1;
}
