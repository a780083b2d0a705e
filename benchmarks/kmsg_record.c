// An independent record of the kernel log during a flood: reads /dev/kmsg
// from its newest record on, one record per read(2), and writes every record
// whose text mentions lockdown (or a rate-limit notice) to stdout whole
// ("pri,seq,usec,flags;text"). Overwritten records (EPIPE) are counted from
// the sequence numbers; on SIGTERM prints "# records N lost M" and exits.
// Used by tests/vm/test_watch_flood.py: C keeps up where Python may not.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(void)
{
	char buf[8192];
	long records = 0, lost = 0;
	long long next = -1;
	struct sigaction sa;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	lseek(fd, 0, SEEK_END);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	printf("# ready\n");
	fflush(stdout);
	while (!stop) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		long long seq;

		if (n < 0) {
			if (errno == EAGAIN) {
				usleep(1000);
				continue;
			}
			if (errno == EPIPE)
				continue;	/* counted below from the next record's sequence number */
			return 1;
		}
		buf[n] = 0;
		records++;
		seq = atoll(strchr(buf, ',') ? strchr(buf, ',') + 1 : "0");
		if (next >= 0 && seq > next)
			lost += seq - next;
		next = seq + 1;
		if (strstr(buf, "ockdown") || strstr(buf, "callbacks suppressed"))
			fputs(buf, stdout);
	}
	printf("# records %ld lost %lld\n", records, (long long)lost);
	return 0;
}
