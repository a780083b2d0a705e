// Denial flood producer: PROCS processes open PATH COUNT times in all, as
// fast as they can, started together, and count what each open returned.
// Prints "eperm ok other ns": opens refused with EPERM, opens that
// succeeded, opens that failed otherwise, and the wall time of the flood.
// Used by benchmarks/flood_guest.py (and tests/vm/test_flood.py) in a guest.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tally {
	long eperm, ok, other;
};

int main(int argc, char **argv)
{
	long count, procs;
	int start[2], results[2];
	struct timespec a, b;
	struct tally sum = { 0, 0, 0 };

	if (argc != 4)
		return 2;
	count = atol(argv[2]);
	procs = atol(argv[3]);
	if (count < 1 || procs < 1 || pipe(start) || pipe(results))
		return 2;
	for (long p = 0; p < procs; p++) {
		long mine = count / procs + (p < count % procs);
		pid_t pid = fork();

		if (pid < 0)
			return 1;
		if (pid == 0) {
			struct tally t = { 0, 0, 0 };
			char go;

			close(start[1]);
			if (read(start[0], &go, 1) < 0)	/* EOF when the parent closes: all start together */
				_exit(1);
			for (long i = 0; i < mine; i++) {
				int fd = open(argv[1], O_RDONLY);

				if (fd >= 0) {
					t.ok++;
					close(fd);
				} else if (errno == EPERM) {
					t.eperm++;
				} else {
					t.other++;
				}
			}
			if (write(results[1], &t, sizeof(t)) != sizeof(t))
				_exit(1);
			_exit(0);
		}
	}
	close(start[0]);
	close(results[1]);
	clock_gettime(CLOCK_MONOTONIC, &a);
	close(start[1]);
	for (long p = 0; p < procs; p++) {
		struct tally t;

		if (read(results[0], &t, sizeof(t)) != sizeof(t))
			return 1;
		sum.eperm += t.eperm;
		sum.ok += t.ok;
		sum.other += t.other;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	while (wait(NULL) > 0)
		;
	printf("%ld %ld %ld %.0f\n", sum.eperm, sum.ok, sum.other,
	       (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec));
	return 0;
}
