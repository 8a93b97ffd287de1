/* iobench: the guest side of bench/disk.py. Times I/O on a block device with O_DIRECT (no
 * guest page cache: every request reaches the virtio-blk device) and prints one marker line
 * per figure on stdout (the serial console), so the host can read them:
 *
 *   TANDEM-DISK-START <name>                  a figure starts (the host timestamps this line)
 *   TANDEM-DISK <name> <ops> <bytes> <seconds>  it ended: that many requests and bytes in that
 *                                             many seconds of the guest's CLOCK_MONOTONIC
 *   TANDEM-DISK-FAIL <name> <what>            a request failed (then exit status 1)
 *
 * The figures, in this order:
 *   seq-read-first  SEQ_MIB MiB from offset 0 in 1 MiB requests (queue depth 1): the first
 *               pass, while an emulator's JIT may still be warming up to the paths it takes
 *   seq-read    the same again: the steady state
 *   seq-write   the same range written in 1 MiB requests (a fixed pattern)
 *   flush       one fdatasync after that: the write-back of whatever the host still holds
 *   rand-read   RAND_COUNT reads of 4 KiB at random 4 KiB-aligned offsets over the whole
 *               device, one at a time (queue depth 1), or fewer if MAX_SECONDS pass first
 *   rand-read-qd8  the same with 8 threads, so 8 requests in flight (with QD > 1)
 *
 * Usage: iobench DEV [SEQ_MIB [RAND_COUNT [QD [MAX_SECONDS [ONLY]]]]]  (defaults 256 20000 8 10)
 * ONLY, a comma-separated list of the figures to run (default all); a SEQ_MIB larger than the
 * device wraps around it (seq-read alone, for a long profile: bench/disk_profile.py).
 *
 * Built on the host by bench/disk.py: gcc -O2 -static -pthread -o iobench iobench.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define BLOCK 4096

static const char *dev;
static int fd;
static uint64_t dev_bytes;
static double max_seconds = 10;
static const char *only;

/* Whether figure `name` is to run. */
static int wanted(const char *name)
{
    if (!only)
        return 1;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (e != NULL);
    }
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void start(const char *name)
{
    printf("TANDEM-DISK-START %s\n", name);
    fflush(stdout);
}

static void done(const char *name, uint64_t ops, uint64_t bytes, double t0)
{
    double s = now() - t0;
    printf("TANDEM-DISK %s %llu %llu %.6f\n", name, (unsigned long long)ops,
           (unsigned long long)bytes, s);
    fflush(stdout);
}

static void fail(const char *name, const char *what)
{
    printf("TANDEM-DISK-FAIL %s %s: %s\n", name, what, strerror(errno));
    fflush(stdout);
    exit(1);
}

static void *aligned(size_t n)
{
    void *p;
    if (posix_memalign(&p, BLOCK, n) != 0) {
        errno = ENOMEM;
        fail("setup", "posix_memalign");
    }
    return p;
}

/* xorshift64*: the same offsets on every engine. */
static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void seq(const char *name, int write, uint64_t total, char *buf)
{
    start(name);
    double t0 = now();
    uint64_t off = 0, ops = 0;
    uint64_t span = dev_bytes / MIB * MIB;
    while (off < total) {
        uint64_t at = off % span;
        ssize_t n = write ? pwrite(fd, buf, MIB, at) : pread(fd, buf, MIB, at);
        if (n != MIB) {
            if (n >= 0)
                errno = EIO;
            fail(name, write ? "pwrite" : "pread");
        }
        off += MIB;
        ops++;
    }
    done(name, ops, off, t0);
}

struct rand_job {
    uint64_t seed, count, done;
    double deadline;
    int err;
};

static void *rand_reads(void *arg)
{
    struct rand_job *j = arg;
    char *buf = aligned(BLOCK);
    uint64_t blocks = dev_bytes / BLOCK;
    for (j->done = 0; j->done < j->count; j->done++) {
        /* The clock only every 256 reads: a vDSO call is cheap, but not free under an
         * emulator. */
        if ((j->done & 255) == 0 && now() > j->deadline)
            break;
        uint64_t off = next(&j->seed) % blocks * BLOCK;
        if (pread(fd, buf, BLOCK, off) != BLOCK) {
            j->err = errno ? errno : EIO;
            break;
        }
    }
    free(buf);
    return NULL;
}

static void rand_figure(const char *name, uint64_t count, int qd)
{
    struct rand_job jobs[64];
    pthread_t th[64];
    if (qd < 1)
        qd = 1;
    if (qd > 64)
        qd = 64;
    start(name);
    double t0 = now();
    for (int i = 0; i < qd; i++) {
        jobs[i] = (struct rand_job){.seed = 0x9E3779B97F4A7C15ULL * (i + 1),
                                    .count = count / qd + (i < (int)(count % qd)),
                                    .deadline = t0 + max_seconds};
        if (qd == 1)
            rand_reads(&jobs[i]);
        else if (pthread_create(&th[i], NULL, rand_reads, &jobs[i]) != 0)
            fail(name, "pthread_create");
    }
    uint64_t ops = 0;
    for (int i = 0; i < qd; i++) {
        if (qd > 1)
            pthread_join(th[i], NULL);
        if (jobs[i].err) {
            errno = jobs[i].err;
            fail(name, "pread");
        }
        ops += jobs[i].done;
    }
    done(name, ops, ops * BLOCK, t0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DEV [SEQ_MIB [RAND_COUNT [QD [MAX_SECONDS [ONLY]]]]]\n",
                argv[0]);
        return 2;
    }
    dev = argv[1];
    uint64_t seq_mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 256;
    uint64_t rand_count = argc > 3 ? strtoull(argv[3], NULL, 0) : 20000;
    int qd = argc > 4 ? atoi(argv[4]) : 8;
    if (argc > 5)
        max_seconds = atof(argv[5]);
    if (argc > 6)
        only = argv[6];
    fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0)
        fail("setup", "open");
    if (ioctl(fd, BLKGETSIZE64, &dev_bytes) != 0) {
        /* A regular file (trying it out on the host). */
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            fail("setup", "size");
        dev_bytes = end;
    }
    printf("TANDEM-DISK-DEV %s %llu\n", dev, (unsigned long long)dev_bytes);
    if (seq_mib * MIB > dev_bytes && !(only && !wanted("seq-write")))
        seq_mib = dev_bytes / MIB;
    char *buf = aligned(MIB);
    if (seq_mib) {
        if (wanted("seq-read-first"))
            seq("seq-read-first", 0, seq_mib * MIB, buf);
        if (wanted("seq-read"))
            seq("seq-read", 0, seq_mib * MIB, buf);
        /* A pattern that is not zeros, so no layer can take the writes for holes. */
        for (size_t i = 0; i < MIB; i++)
            buf[i] = (char)(i * 131 + 7);
        if (wanted("seq-write"))
            seq("seq-write", 1, seq_mib * MIB, buf);
    }
    if (seq_mib && wanted("flush")) {
        start("flush");
        double t0 = now();
        if (fdatasync(fd) != 0)
            fail("flush", "fdatasync");
        done("flush", 1, 0, t0);
    }
    if (rand_count) {
        if (wanted("rand-read"))
            rand_figure("rand-read", rand_count, 1);
        if (qd > 1 && wanted("rand-read-qd")) {
            char name[32];
            snprintf(name, sizeof name, "rand-read-qd%d", qd);
            rand_figure(name, rand_count, qd);
        }
    }
    close(fd);
    return 0;
}
