/*
 * What batching UDP sends would save the SFU on loopback (docs/media.md, issue #18 item 4).
 *
 *   gcc -O2 -o /tmp/udp_batching bench/udp_batching.c && /tmp/udp_batching
 *
 * Part 1, a fan-out: one 1,000-byte (and 150-byte) datagram to each of 60 receiving sockets,
 * 20,000 datagrams a second, a child process draining them (epoll, woken as the SFU's
 * receivers are): one sendto per peer socket (the SFU today: aioice gives every connection its
 * own socket), one socket and sendto per destination, one socket and one sendmmsg for all 60
 * (what one UDP socket per node would allow).
 * Part 2, one destination (a paced queue's flush to one receiver): k datagrams of 1,000 bytes
 * by k sendto, one sendmmsg, one sendmsg with UDP GSO (UDP_SEGMENT: equal sizes only).
 * Prints the sender's CPU (its process time: loopback delivery into the receiving socket and
 * the receiver's wake-up are charged to it, as they are to the SFU) per datagram.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define PEERS 60
#define RATE 20000
#define SECONDS 3.0

static double
clock_of(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void
pace(double *next, double period)
{
    *next += period;
    double now = clock_of(CLOCK_MONOTONIC);
    if (*next > now) {
        struct timespec ts = {0, (long)((*next - now) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static pid_t
drain(int *socks, int n)
{
    pid_t child = fork();
    if (child != 0)
        return child;
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = socks[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, socks[i], &e);
    }
    char buf[65536];
    struct epoll_event ev[PEERS];
    for (;;) {
        int k = epoll_wait(ep, ev, PEERS, -1);
        for (int j = 0; j < k; j++)
            while (recv(ev[j].data.fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
    }
}

static int
receiver(struct sockaddr_in *addr)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof *addr;
    getsockname(s, (struct sockaddr *)addr, &l);
    int size = 1 << 22;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    return s;
}

static void
fan_out(int size)
{
    int rx[PEERS], tx[PEERS];
    struct sockaddr_in addr[PEERS];
    for (int i = 0; i < PEERS; i++) {
        rx[i] = receiver(&addr[i]);
        tx[i] = socket(AF_INET, SOCK_DGRAM, 0);
    }
    pid_t child = drain(rx, PEERS);
    int shared = socket(AF_INET, SOCK_DGRAM, 0);
    char *pkt = calloc(1, (size_t)size);
    struct mmsghdr msgs[PEERS];
    struct iovec iov[PEERS];
    for (int i = 0; i < PEERS; i++) {
        iov[i] = (struct iovec){pkt, (size_t)size};
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_name = &addr[i];
        msgs[i].msg_hdr.msg_namelen = sizeof addr[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const char *names[] = {"a socket per peer, sendto each", "one socket, sendto each", "one socket, one sendmmsg"};
    for (int round = 0; round < 2; round++)
        for (int mode = 0; mode < 3; mode++) {
            long sent = 0;
            double start = clock_of(CLOCK_MONOTONIC), cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID), next = start;
            while (clock_of(CLOCK_MONOTONIC) - start < SECONDS) {
                if (mode == 2) {
                    int r = sendmmsg(shared, msgs, PEERS, 0);
                    sent += r > 0 ? r : 0;
                } else
                    for (int i = 0; i < PEERS; i++)
                        sent += sendto(mode == 0 ? tx[i] : shared, pkt, (size_t)size, 0, (struct sockaddr *)&addr[i],
                                       sizeof addr[i]) > 0;
                pace(&next, (double)PEERS / RATE);
            }
            printf("fan-out to %d, %4d B, %-32s %.2f µs per datagram\n", PEERS, size, names[mode],
                   (clock_of(CLOCK_PROCESS_CPUTIME_ID) - cpu) / sent * 1e6);
            fflush(stdout);
        }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    for (int i = 0; i < PEERS; i++) {
        close(rx[i]);
        close(tx[i]);
    }
    close(shared);
    free(pkt);
}

static void
one_destination(int k)
{
    const int size = 1000;
    struct sockaddr_in addr;
    int rx = receiver(&addr);
    pid_t child = drain(&rx, 1);
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    char *pkt = calloc((size_t)k, size);
    const char *names[] = {"sendto each", "one sendmmsg", "one sendmsg, UDP GSO"};
    for (int round = 0; round < 2; round++)
        for (int mode = 0; mode < 3; mode++) {
            long sent = 0;
            double start = clock_of(CLOCK_MONOTONIC), cpu = clock_of(CLOCK_PROCESS_CPUTIME_ID), next = start;
            while (clock_of(CLOCK_MONOTONIC) - start < SECONDS) {
                if (mode == 0) {
                    for (int i = 0; i < k; i++)
                        sent += sendto(tx, pkt + i * size, size, 0, (struct sockaddr *)&addr, sizeof addr) > 0;
                } else if (mode == 1) {
                    struct mmsghdr m[64];
                    struct iovec v[64];
                    for (int i = 0; i < k; i++) {
                        v[i] = (struct iovec){pkt + i * size, size};
                        memset(&m[i], 0, sizeof m[i]);
                        m[i].msg_hdr.msg_name = &addr;
                        m[i].msg_hdr.msg_namelen = sizeof addr;
                        m[i].msg_hdr.msg_iov = &v[i];
                        m[i].msg_hdr.msg_iovlen = 1;
                    }
                    int r = sendmmsg(tx, m, (unsigned)k, 0);
                    sent += r > 0 ? r : 0;
                } else {
                    struct iovec v = {pkt, (size_t)size * k};
                    char control[CMSG_SPACE(sizeof(uint16_t))];
                    struct msghdr h = {.msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = &v, .msg_iovlen = 1,
                                       .msg_control = control, .msg_controllen = sizeof control};
                    struct cmsghdr *c = CMSG_FIRSTHDR(&h);
                    c->cmsg_level = SOL_UDP;
                    c->cmsg_type = UDP_SEGMENT;
                    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                    *(uint16_t *)CMSG_DATA(c) = size;
                    if (sendmsg(tx, &h, 0) > 0)
                        sent += k;
                }
                pace(&next, (double)k / RATE);
            }
            printf("one destination, %d × %d B, %-22s %.2f µs per datagram\n", k, size, names[mode],
                   (clock_of(CLOCK_PROCESS_CPUTIME_ID) - cpu) / sent * 1e6);
            fflush(stdout);
        }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(rx);
    close(tx);
    free(pkt);
}

int
main(void)
{
    fan_out(1000);
    fan_out(150);
    one_destination(2);
    one_destination(8);
    return 0;
}
