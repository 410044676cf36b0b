/* port: free TCP ports on loopback, for listeners a program is about to
 * start (the demo's broker, the tests'). */
#ifndef SLUICE_PORT_H
#define SLUICE_PORT_H

/* A port on 127.0.0.1 that nothing listens on now and that this process
 * has not been given before (the kernel may offer the same free port twice
 * in a row, and one port for two listeners stops the second); -1 if none. */
int port_free_loopback(void);

#endif
