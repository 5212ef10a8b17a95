/*
 * A static musl program for the guest: stdio, malloc, a file, a thread.
 * Prints "musl: ok" and exits with status 7 (so the status is visible), or prints
 * "musl: FAILED: ..." and exits 1.
 *
 *   usage: hello-musl [DIR]      (the scratch file goes in DIR, default /tmp)
 *   build: musl-gcc -static -O2 -Wall -o hello-musl hello-musl.c -lpthread
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int fail(const char *what)
{
    printf("musl: FAILED: %s: %s\n", what, strerror(errno));
    return 1;
}

static void *add(void *arg)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        counter += *(int *)arg;
        pthread_mutex_unlock(&lock);
    }
    return arg;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    printf("musl: hello from %s, pid %d\n", argv[0], (int)getpid());

    /* malloc: a small block (brk) and a large one (mmap). */
    char *small = malloc(100), *large = malloc(1 << 20);
    if (!small || !large)
        return fail("malloc");
    memset(large, 0xab, 1 << 20);
    snprintf(small, 100, "%s/hello-musl.%d", dir, (int)getpid());

    /* A file: create, write, read back, unlink. */
    const char text[] = "written by musl\n";
    char buf[64] = {0};
    int fd = open(small, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0)
        return fail("open");
    if (write(fd, text, sizeof text) != sizeof text)
        return fail("write");
    if (lseek(fd, 0, SEEK_SET) != 0 || read(fd, buf, sizeof buf) != sizeof text)
        return fail("read back");
    if (memcmp(buf, text, sizeof text) != 0 || close(fd) != 0 || unlink(small) != 0)
        return fail("compare, close or unlink");
    free(large);
    free(small);

    /* A thread sharing a counter with main. */
    pthread_t t;
    int one = 1, two = 2;
    void *ret;
    if ((errno = pthread_create(&t, NULL, add, &one)) != 0)
        return fail("pthread_create");
    add(&two);
    if ((errno = pthread_join(t, &ret)) != 0)
        return fail("pthread_join");
    if (ret != &one || counter != 3000) {
        printf("musl: FAILED: counter = %d, expected 3000\n", counter);
        return 1;
    }

    printf("musl: ok\n");
    return 7;
}
