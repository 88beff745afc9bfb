/* tcp_bench: the guest side of the TCP workloads of `./x bench net` (stream and request/response).
 *
 * Usage: tcp_bench MODE PORT N
 *   stream-in   the host sends N bytes; the window runs from the first byte received to EOF.
 *   stream-out  N bytes go to the host (64 KiB writes), then a shutdown of the sending side;
 *               the window runs from the accept to the host's EOF (every byte acknowledged).
 *   rr          N + 1 one-byte round trips; the window runs from the first byte received to the
 *               last echo, so it spans N round trips.
 *   http        N + 1 `GET` requests on one kept-alive connection, each answered with a 4 KiB
 *               body; the window spans N requests as for rr.
 *
 * The program listens on PORT, prints `[bench] mark start` (the host connects then), serves one
 * connection, prints `[bench] mark end` and reports counter-hz, operations (MiB for the streams,
 * round trips otherwise), window-ticks, idle-ticks (ticks the CPU spent idle inside the window,
 * see idle_ns) and idle-resolution-ns. libos's `netecho bench MODE PORT N` is the same program
 * in Rust over `libos::net`; the harness compares the two. */
#include "bench_common.h"
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IO_SIZE (64 * 1024)
#define HTTP_BODY 4096
#define MIB (1024 * 1024)

static char buffer[IO_SIZE];

static void die(const char *what) {
    fprintf(stderr, "tcp_bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Reads up to `len` bytes; 0 at EOF. */
static size_t read_some(int fd, char *buf, size_t len) {
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0) {
            return (size_t)n;
        }
        if (errno != EINTR) {
            die("read");
        }
    }
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Window bookkeeping: counter and idle time at its start. */
struct window {
    uint64_t start_ticks;
    long long start_idle_ns;
};

static void window_open(struct window *w) {
    w->start_idle_ns = bench_idle_ns();
    w->start_ticks = bench_ticks();
}

static void window_close(const struct window *w, uint64_t operations) {
    uint64_t end_ticks = bench_ticks();
    long long idle = bench_idle_ns() - w->start_idle_ns;
    bench_mark("end");
    uint64_t hz = bench_ticks_hz();
    bench_report("counter-hz", hz);
    bench_report("operations", operations);
    bench_report("window-ticks", end_ticks - w->start_ticks);
    bench_report("idle-ticks", (uint64_t)((double)idle * (double)hz / 1e9));
    bench_report("idle-resolution-ns", (uint64_t)bench_idle_resolution_ns);
}

static void stream_in(int fd, uint64_t total) {
    struct window w;
    uint64_t received = read_some(fd, buffer, IO_SIZE);
    window_open(&w);
    for (size_t n = received; n > 0; received += n) {
        n = read_some(fd, buffer, IO_SIZE);
    }
    if (received != total) {
        fprintf(stderr, "tcp_bench: received %llu of %llu bytes\n", (unsigned long long)received, (unsigned long long)total);
        exit(1);
    }
    window_close(&w, total / MIB);
}

static void stream_out(int fd, uint64_t total) {
    struct window w;
    window_open(&w);
    memset(buffer, 'x', IO_SIZE);
    for (uint64_t sent = 0; sent < total;) {
        size_t n = total - sent < IO_SIZE ? (size_t)(total - sent) : IO_SIZE;
        write_all(fd, buffer, n);
        sent += n;
    }
    if (shutdown(fd, SHUT_WR) != 0) {
        die("shutdown");
    }
    while (read_some(fd, buffer, IO_SIZE) > 0) {
    }
    window_close(&w, total / MIB);
}

static void round_trips(int fd, uint64_t rounds) {
    struct window w;
    char byte;
    for (uint64_t round = 0; round <= rounds; round++) {
        if (read_some(fd, &byte, 1) != 1) {
            fprintf(stderr, "tcp_bench: EOF after %llu round trips\n", (unsigned long long)round);
            exit(1);
        }
        if (round == 0) {
            window_open(&w);
        }
        write_all(fd, &byte, 1);
    }
    window_close(&w, rounds);
}

/* Reads one request head (up to the blank line) into `buffer`; 0 at EOF. Requests do not
 * overlap: the client sends the next one after the whole answer. */
static size_t read_request(int fd) {
    size_t have = 0;
    while (have < 4 || memcmp(buffer + have - 4, "\r\n\r\n", 4) != 0) {
        if (have == IO_SIZE) {
            fprintf(stderr, "tcp_bench: request head over %d bytes\n", IO_SIZE);
            exit(1);
        }
        size_t n = read_some(fd, buffer + have, IO_SIZE - have);
        if (n == 0) {
            return 0;
        }
        have += n;
    }
    return have;
}

static void http(int fd, uint64_t requests) {
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n";
    static char body[HTTP_BODY];
    memset(body, 'b', sizeof body);
    struct window w;
    for (uint64_t request = 0; request <= requests; request++) {
        if (read_request(fd) == 0) {
            fprintf(stderr, "tcp_bench: EOF after %llu requests\n", (unsigned long long)request);
            exit(1);
        }
        if (request == 0) {
            window_open(&w);
        }
        if (strncmp(buffer, "GET ", 4) != 0) {
            fprintf(stderr, "tcp_bench: not a GET request\n");
            exit(1);
        }
        struct iovec parts[2] = {{(void *)head, sizeof head - 1}, {body, sizeof body}};
        ssize_t n = writev(fd, parts, 2);
        if (n != (ssize_t)(sizeof head - 1 + sizeof body)) {
            /* A short writev on a fresh 4 KiB answer does not happen with default buffers. */
            die("writev");
        }
    }
    window_close(&w, requests);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tcp_bench stream-in|stream-out|rr|http PORT N\n");
        return 2;
    }
    const char *mode = argv[1];
    int port = atoi(argv[2]);
    uint64_t n = strtoull(argv[3], NULL, 10);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        die("socket");
    }
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 4) != 0) {
        die("bind/listen");
    }
    bench_mark("start");
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
        die("accept");
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        die("TCP_NODELAY");
    }
    if (strcmp(mode, "stream-in") == 0) {
        stream_in(fd, n);
    } else if (strcmp(mode, "stream-out") == 0) {
        stream_out(fd, n);
    } else if (strcmp(mode, "rr") == 0) {
        round_trips(fd, n);
    } else if (strcmp(mode, "http") == 0) {
        http(fd, n);
    } else {
        fprintf(stderr, "tcp_bench: unknown mode %s\n", mode);
        return 2;
    }
    close(fd);
    close(listener);
    return 0;
}
