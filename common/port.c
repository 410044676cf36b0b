/* port: see port.h. */
#include "port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#define TRIES 100

static pthread_mutex_t given_mu = PTHREAD_MUTEX_INITIALIZER;
static int given[4096];
static size_t ngiven;

static int
bind_any(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

int
port_free_loopback(void)
{
	int port = -1;
	pthread_mutex_lock(&given_mu);
	for (int tries = 0; tries < TRIES; tries++) {
		int p = bind_any();
		if (p < 0)
			break;
		bool seen = false;
		for (size_t i = 0; i < ngiven && !seen; i++)
			seen = given[i] == p;
		if (seen)
			continue;
		if (ngiven < sizeof(given) / sizeof(given[0]))
			given[ngiven++] = p;
		port = p;
		break;
	}
	pthread_mutex_unlock(&given_mu);
	return port;
}
