/* port_test: port_free_loopback gives ports one can listen on, never the
 * same one twice (the kernel may offer a just-closed port again, and a
 * broker given one port for two listeners cannot start). */
#include "harness.h"
#include "port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 2000

static void
never_the_same_port_twice(void)
{
	static unsigned char seen[65536];
	for (int i = 0; i < N; i++) {
		int p = port_free_loopback();
		CHECK(p > 0 && p < 65536);
		CHECK_EQ(seen[p], 0);
		seen[p] = 1;
	}
}

static void
the_port_can_be_listened_on(void)
{
	int p = port_free_loopback();
	CHECK(p > 0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fd, 1) == 0);
	close(fd);
}

static const th_case cases[] = {
	TH_CASE(never_the_same_port_twice),
	TH_CASE(the_port_can_be_listened_on),
	{NULL, NULL},
};

TH_MAIN(cases)
