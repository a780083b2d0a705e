// An independent record of the kernel log during a flood: reads /dev/kmsg
// from its newest record on, one record per read(2), and writes to stdout
// whole ("pri,seq,usec,flags;text") every record the kernel itself logged
// (facility 0, not a /dev/kmsg write) whose text mentions lockdown or a
// rate-limit notice, and the test's own lines with "kmsg-flood". Overwritten records
// (EPIPE) are counted from the sequence numbers, and each gap is printed
// ("# gap FIRST COUNT"); on SIGTERM prints "# records N lost M first F last L"
// and exits.
//
// It runs under SCHED_FIFO and waits in poll(2): it reads every record soon
// after it is stored, the kernel's complete view, which
// tests/vm/test_watch_flood.py compares watch --follow with.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
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
	long records = 0;
	long long lost = 0, next = -1, first = -1;
	struct sigaction sa;
	struct sched_param sp = { .sched_priority = 1 };
	struct pollfd pfd;
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		return 1;
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: poll(2) returns EINTR */
	lseek(fd, 0, SEEK_END);
	setvbuf(stdout, NULL, _IOLBF, 0);	/* the flood's writer waits for its markers here */
	printf("# ready\n");
	fflush(stdout);
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (!stop) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		long long seq;
		char *comma;

		if (n < 0) {
			if (errno == EAGAIN) {
				if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
					return 1;
				continue;
			}
			if (errno == EPIPE)
				continue;	/* counted below from the next record's sequence number */
			return 1;
		}
		buf[n] = 0;
		records++;
		comma = strchr(buf, ',');
		seq = atoll(comma ? comma + 1 : "0");
		if (first < 0)
			first = seq;
		if (next >= 0 && seq > next) {
			lost += seq - next;
			printf("# gap %lld %lld\n", next, seq - next);
		}
		next = seq + 1;
		if ((atoi(buf) >> 3 == 0 && (strstr(buf, "ockdown") || strstr(buf, "callbacks suppressed")))
		    || strstr(buf, "kmsg-flood"))
			fputs(buf, stdout);
	}
	printf("# records %ld lost %lld first %lld last %lld\n", records, lost, first, next - 1);
	return 0;
}
