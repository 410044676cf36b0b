/* security_test: loopback by default, mutual TLS and private files.
 *
 * The built-in configuration (and config/sluice.yaml) listens on
 * 127.0.0.1 only.
 *
 * A tls+tcp:// listener with broker.tls.require_client_cert refuses a
 * client without a certificate and one whose certificate another CA
 * signed, and serves one holding a certificate of the configured CA:
 * producers (the client library), a worker and the sluice command
 * (worker.tls) all work over it, and the audit passes. Certificates are
 * made for the case with openssl: a throwaway CA, the broker's, a
 * client's, and a rogue CA with its client.
 *
 * The broker's database (and its directory, WAL, shared memory and lock),
 * the sink database and the supervisor's state file are created private
 * to their user (0600, directories 0700), whatever the umask. */
#include "config.h"
#include "fault.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define Q "default"

/* Makes ca.pem, server.pem/server.key (localhost, 127.0.0.1), client.pem
 * (certificate and key) and rogue.pem (from another CA) in th_dir(). */
static void
make_certificates(void)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	int rc = th_sh(NULL,
	               "set -e; exec 2>openssl.log\n"
	               "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca\n"
	               "openssl req %s -keyout server.key -out server.csr -subj /CN=localhost\n"
	               "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n"
	               "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	               "-out server.pem -days 2 -extfile san.ext\n"
	               "openssl req %s -keyout client.key -out client.csr -subj /CN=sluice-worker\n"
	               "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	               "-out client.crt -days 2\n"
	               "cat client.crt client.key > client.pem\n"
	               "openssl req -x509 %s -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj /CN=rogue\n"
	               "openssl req %s -keyout rogue.key -out rogue.csr -subj /CN=rogue-client\n"
	               "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key "
	               "-CAcreateserial -out rogue.crt -days 2\n"
	               "cat rogue.crt rogue.key > rogue.pem\n",
	               ec, ec, ec, ec, ec);
	if (rc != 0)
		th_fail(__FILE__, __LINE__, "openssl failed: %s", th_read(th_path("openssl.log")));
}

/* PING over url with these TLS settings (NULL: none); the client's result. */
static int
ping_with(const char *url, const char *ca, const char *cert_key)
{
	sluice_client *c;
	sluice_opts o = {.timeout_ms = 2000, .tls_ca = ca, .tls_cert_key = cert_key,
	                 .tls_server_name = "localhost"};
	int rc = sluice_open(&c, url, &o);
	if (rc == 0)
		rc = sluice_ping(c, NULL);
	sluice_close(c);
	return rc;
}

static void
mutual_tls_refuses_strangers_and_serves_holders(void)
{
	make_certificates();
	fx_config(NULL);
	const char *tls_url = th_fmt("tls+tcp://127.0.0.1:%d", th_port());
	const char *ca = th_path("ca.pem"), *client = th_path("client.pem");
	th_write(fx.config, th_fmt(
		"broker:\n"
		"  listen: [%s, %s]\n"
		"  http: \"%s\"\n"
		"  data: %s\n"
		"  tls:\n"
		"    cert: %s\n    key: %s\n    ca: %s\n    require_client_cert: true\n"
		"queue_defaults:\n  max_attempts: 1000\n"
		"worker:\n"
		"  broker: %s\n"
		"  batch_size: 100\n  linger: 20ms\n"
		"  tls:\n    ca: %s\n    cert_key: %s\n    server_name: localhost\n"
		"  sink:\n    path: %s\n"
		"supervisor:\n  state_file: %s\n",
		fx.url, tls_url, fx.http, fx.data, th_path("server.pem"), th_path("server.key"), ca,
		tls_url, ca, client, fx.sink, fx.state));
	fx_broker("broker.log");

	/* strangers are refused */
	int none = ping_with(tls_url, ca, NULL);
	int rogue = ping_with(tls_url, ca, th_path("rogue.pem"));
	int plain = ping_with(th_fmt("tcp://%s", tls_url + 10), NULL, NULL);
	printf("  without a certificate: %s; another CA's: %s; plain TCP to the TLS port: %s\n",
	       sluice_strerror(none), sluice_strerror(rogue), sluice_strerror(plain));
	CHECK(none != 0);
	CHECK(rogue != 0);
	CHECK(plain != 0);

	/* holders are served: the library, a worker, the sluice command */
	CHECK_EQ(ping_with(tls_url, ca, client), 0);
	pid_t w = fx_worker("worker.log", NULL);
	ft_load *l = ft_load_start(&(ft_load_opts){.url = tls_url, .producers = 2, .batch = 10,
	                                           .tls_ca = ca, .tls_cert_key = client,
	                                           .tls_server_name = "localhost",
	                                           .max_per_producer = 500});
	char *out;
	CHECK_EQ(th_sh(&out, "printf 'one\\ntwo\\n' | %s -c %s put -q " Q, th_bin("sluice"), fx.config), 0);
	printf("  sluice put over mutual TLS: %s", out);
	int64_t end = th_now_ms() + 30000;
	while (ft_load_acked(l) < 1000 && th_now_ms() < end)
		usleep(20000);
	CHECK_EQ(ft_load_acked(l), 1000);
	ft_audit_result r;
	ft_audit(l, NULL, &r);
	CHECK(th_wait_file(th_path("worker.log"), "WORKER-START", 1000));
	CHECK_CONTAINS(th_read(th_path("worker.log")), "tls+tcp://");
	th_stop(w, SIGTERM, 20000);
	printf("  FIGURES tls: strangers refused 3 of 3, acknowledged over mutual TLS %ld, lost %ld, "
	       "duplicated %ld\n",
	       r.acked, r.lost, r.duplicated);
}

/* mode & 0777 of path, or -1 */
static int
mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void
files_are_private_whatever_the_umask(void)
{
	fx_config(NULL);
	const char *dir = th_path("data/sub");
	const char *data = th_path("data/sub/broker.db");
	th_write(fx.config, th_fmt(
		"broker:\n  listen: [%s]\n  http: \"%s\"\n  data: %s\n"
		"worker:\n  broker: %s\n  sink:\n    path: %s\n"
		"supervisor:\n  state_file: %s\n  min_replicas: 1\n  polling_interval: 200ms\n",
		fx.url, fx.http, data, fx.url, fx.sink, fx.state));
	mode_t old = umask(0);
	fx_broker("broker.log");
	fx_supervisor("supervisor.log", NULL);
	umask(old);
	sluice_client *c = fx_client();
	CHECK_EQ(fx_put(c, Q, "p", 0, 100, 100), 100);
	CHECK(fx_drained(c, Q, 20000));
	int64_t end = th_now_ms() + 10000;
	while (access(fx.state, F_OK) != 0 && th_now_ms() < end)
		usleep(50000);
	const struct {
		const char *path;
		int want;
	} files[] = {
		{th_path("data"), 0700},
		{dir, 0700},
		{data, 0600},
		{th_fmt("%s-wal", data), 0600},
		{th_fmt("%s-shm", data), 0600},
		{th_fmt("%s.lock", data), 0600},
		{fx.sink, 0600},
		{th_fmt("%s-wal", fx.sink), 0600},
		{th_fmt("%s-shm", fx.sink), 0600},
		{fx.state, 0600},
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int m = mode_of(files[i].path);
		printf("  %04o %s\n", m, files[i].path + strlen(th_dir()) + 1);
		if (m != files[i].want)
			th_fail(__FILE__, __LINE__, "%s has mode %04o, not %04o", files[i].path, m,
			        files[i].want);
	}
}

/* Without a configuration every listener is on loopback. */
static void
defaults_listen_on_loopback_only(void)
{
	cfg *c;
	cfg_error e;
	CHECK_EQ(cfg_load(NULL, &c, &e), CFG_OK);
	for (size_t i = 0; i < c->broker.nlisten; i++) {
		printf("  broker.listen: %s\n", c->broker.listen[i]);
		CHECK(strncmp(c->broker.listen[i], "tcp://127.0.0.1:", 16) == 0 ||
		      strncmp(c->broker.listen[i], "ipc://", 6) == 0);
	}
	printf("  broker.http: %s\n", c->broker.http);
	CHECK(strncmp(c->broker.http, "127.0.0.1:", 10) == 0);
	CHECK(strncmp(c->worker.broker, "tcp://127.0.0.1:", 16) == 0);
	cfg_free(c);
	/* and config/sluice.yaml says the same */
	CHECK_EQ(cfg_load(th_src("config/sluice.yaml"), &c, &e), CFG_OK);
	CHECK_STR(c->broker.listen[0], "tcp://127.0.0.1:7450");
	CHECK_STR(c->broker.http, "127.0.0.1:7451");
	cfg_free(c);
}

static const th_case cases[] = {
	TH_CASE(defaults_listen_on_loopback_only),
	TH_CASE(mutual_tls_refuses_strangers_and_serves_holders),
	TH_CASE(files_are_private_whatever_the_umask),
	{NULL, NULL},
};

TH_MAIN(cases)
