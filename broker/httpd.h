/*
 * httpd: a small HTTP/1.1 server on one epoll thread, for the broker's API.
 * It frames requests (head, Content-Length body, 100 Continue, keep-alive,
 * pipelining one request at a time) and writes the answers; what a request
 * means is its handler's business (http.c).
 *
 * A request's life: head() runs on the server's thread when the head is
 * in. The handler answers it with brk_hreq_respond, at once or later from
 * any thread, exactly once; or, inside head(), calls brk_hreq_read_body,
 * and body() runs on the server's thread when the body is in, to be
 * answered the same way. Until it is answered, the request's strings and
 * body stay put. A body left unread when the answer goes is skipped (the
 * connection goes on) unless the answer closes the connection.
 */
#ifndef SLUICE_BRK_HTTPD_H
#define SLUICE_BRK_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct brk_httpd brk_httpd;
typedef struct brk_hreq brk_hreq;

typedef struct brk_httpd_handler {
	void (*head)(void *arg, brk_hreq *r);
	void (*body)(void *arg, brk_hreq *r);
	void *arg;
} brk_httpd_handler;

/* Listens on hostport ("host:port", "[v6]:port", or "http://" before
 * either) and starts the thread. 0, or -1 with err filled. */
int brk_httpd_open(const char *hostport, const brk_httpd_handler *hd, brk_httpd **out,
                   char *err, size_t errlen);
/* The address listened on, as "host:port" with the port bound. */
const char *brk_httpd_addr(const brk_httpd *s);
/* Stops the thread and closes every connection. Every request handed to
 * the handler must have been answered. Accepts NULL. */
void brk_httpd_close(brk_httpd *s);

const char *brk_hreq_method(const brk_hreq *r);
const char *brk_hreq_target(const brk_hreq *r);
/* The first header field named name (case-insensitive), or NULL. */
const char *brk_hreq_header(const brk_hreq *r, const char *name);
/* Whether the request's body can be framed (no Transfer-Encoding and at
 * most one well-formed Content-Length); only then is read_body allowed,
 * and an answer to an unframed request always closes the connection. */
bool brk_hreq_framed(const brk_hreq *r);
size_t brk_hreq_content_length(const brk_hreq *r);

void brk_hreq_set_data(brk_hreq *r, void *data);
void *brk_hreq_data(const brk_hreq *r);

/* Inside head() only, for a framed request: read the body (sending a 100
 * Continue first where the client asked for one), then call body(). */
void brk_hreq_read_body(brk_hreq *r);
/* In body(): the Content-Length bytes of the body. */
const uint8_t *brk_hreq_body(const brk_hreq *r);

/* The answer: status, Content-Type, extra header lines (each ending in
 * CRLF, or NULL) and the body (copied). close closes the connection after
 * it. Any thread, once per request; r is not to be touched afterwards. */
void brk_hreq_respond(brk_hreq *r, unsigned status, const char *type, const char *headers,
                      const void *body, size_t len, bool close);

#endif
