// Open and close one file N times; print the nanoseconds per open/close pair.
// Used by benchmarks/enforcer.py inside a guest, where Python's own overhead
// would hide the cost of the enforcer's hook.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 100000, denied = 0;
	struct timespec a, b;

	if (argc < 2)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);

		if (fd < 0)
			denied++;
		else
			close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f %ld\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, denied);
	return 0;
}
