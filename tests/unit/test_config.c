#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/conffile.h"

static int parse(struct pd_config *c, const char *text, char *err, size_t errlen)
{
	assert_int_equal(pd_config_init(c), 0);
	return pd_config_parse(c, text, strlen(text), "t.conf", err, errlen);
}

static void test_defaults_and_full_file(void **state)
{
	const char *text = "# a comment\n"
			   "\n"
			   "listen = unix:/run/x.sock\n"
			   "  threads=8  \n"
			   "api_key_sha256 = " "0123456789abcdef0123456789abcdef"
			   "0123456789abcdef0123456789abcdef\n"
			   "api_key_sha256 = " "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
			   "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n"
			   "scope = all\n"
			   "site_pid_file = /run/site.pid\n"
			   "trust_proxy = yes\n"
			   "public_url = HTTPS://diag.example:443/pd/\n"
			   "list_max_age_ms = 250\n"
			   "log_requests = false";
	struct pd_config c;
	char err[256] = "";

	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_string_equal(c.listen, "unix:/run/x.sock");
	assert_int_equal(c.threads, 8);
	assert_int_equal(c.keys.n, 2);
	assert_int_equal(c.keys.hash[1][31], 0xff);
	assert_true(c.scope.all);
	assert_string_equal(c.site_pid_file, "/run/site.pid");
	assert_true(c.trust_proxy);
	assert_string_equal(c.public_url, "https://diag.example/pd"); /* normal form */
	assert_false(c.log_requests);
	assert_int_equal(c.list_max_age_ms, 250);
	pd_config_release(&c);

	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(c.threads, 16);
	assert_int_equal(c.list_max_age_ms, 0);
	assert_true(c.log_requests);
	assert_false(c.scope.all);
	assert_null(c.listen);
	assert_null(c.public_url);
	pd_config_release(&c);
}

static void expect_error(const char *text, const char *fragment)
{
	struct pd_config c;
	char err[256] = "";

	assert_int_equal(parse(&c, text, err, sizeof(err)), -EINVAL);
	if (!strstr(err, fragment))
		fail_msg("error '%s' lacks '%s'", err, fragment);
	pd_config_release(&c);
}

static void test_errors_name_file_and_line(void **state)
{
	expect_error("threads = 4\nbogus = 1\n", "t.conf:2: unknown key 'bogus'");
	expect_error("threads = 0\n", "t.conf:1: threads");
	expect_error("threads = 257\n", "threads");
	expect_error("threads = 4x\n", "threads");
	expect_error("threads = 2\nthreads = 3\n", "t.conf:2: 'threads' is set twice");
	expect_error("list_max_age_ms = 60001\n", "t.conf:1: list_max_age_ms must be 0..60000");
	expect_error("list_max_age_ms = -1\n", "list_max_age_ms");
	expect_error("api_key_sha256 = abc\n", "64 hex digits");
	expect_error("api_key_sha256 = " "0123456789abcdef0123456789abcdef"
		     "0123456789abcdef0123456789abcdeg\n", "64 hex digits");
	expect_error("no equals sign\n", "expected 'key = value'");
	expect_error(" = value\n", "expected 'key = value'");
	expect_error("trust_proxy = maybe\n", "true or false");
	expect_error("site_pid_file = relative.pid\n", "absolute");
	expect_error("scope = no-such-user-procdiag\n", "scope");
	expect_error("listen =\n", "listen needs a value");
	expect_error("\npublic_url = ftp://x\n", "t.conf:2: public_url must start with http://");
	expect_error("public_url = http://a b/\n", "public_url needs a host");
	expect_error("public_url = http://x/a/../b\n", "public_url may have a path only");
	expect_error("public_url = http://x/?q\n", "public_url must not have a query");
	expect_error("public_url = http://x\npublic_url = http://y\n", "'public_url' is set twice");
}

static void test_dump_keys(void **state)
{
	struct pd_config c;
	char err[256] = "";

	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_null(c.spool_dir);
	assert_int_equal(c.max_dumps, 1);
	assert_true(c.spool_memory_max == 8u << 20);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "spool_dir = /var/lib/procdiag/spool\nmax_dumps = 3\n"
				   "spool_memory_max = 0\n", err, sizeof(err)), 0);
	assert_string_equal(c.spool_dir, "/var/lib/procdiag/spool");
	assert_int_equal(c.max_dumps, 3);
	assert_true(c.spool_memory_max == 0);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "spool_memory_max = 64k\n", err, sizeof(err)), 0);
	assert_true(c.spool_memory_max == 65536);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "spool_memory_max = 2G\n", err, sizeof(err)), 0);
	assert_true(c.spool_memory_max == 2ull << 30);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "spool_memory_max = 1048576\n", err, sizeof(err)), 0);
	assert_true(c.spool_memory_max == 1048576);
	pd_config_release(&c);

	expect_error("spool_dir = tmp\n", "spool_dir must be an absolute path");
	expect_error("spool_dir = /a\nspool_dir = /b\n", "t.conf:2: 'spool_dir' is set twice");
	expect_error("max_dumps = 0\n", "max_dumps must be 1..64");
	expect_error("max_dumps = 65\n", "max_dumps");
	expect_error("max_dumps = two\n", "max_dumps");
	expect_error("spool_memory_max = 8X\n", "spool_memory_max");
	expect_error("spool_memory_max = M\n", "spool_memory_max");
	expect_error("spool_memory_max = -1\n", "spool_memory_max");
	expect_error("spool_memory_max = 99999999999999999999G\n", "spool_memory_max");
	expect_error("spool_memory_max = 17179869184G\n", "spool_memory_max");
}

static void test_timeout_keys(void **state)
{
	struct pd_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(c.request_read_timeout, 5);
	assert_int_equal(c.send_timeout, 60);
	assert_true(c.download_min_rate == 256u << 10);
	assert_int_equal(c.drain_timeout, 30);
	assert_int_equal(c.resume_timeout, 120);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "request_read_timeout = 1\nsend_timeout = 3600\n"
				   "download_min_rate = 0\ndrain_timeout = 0\nresume_timeout = 0\n",
			       err, sizeof(err)), 0);
	assert_int_equal(c.resume_timeout, 0);
	assert_int_equal(c.drain_timeout, 0);
	assert_int_equal(c.request_read_timeout, 1);
	assert_int_equal(c.send_timeout, 3600);
	assert_true(c.download_min_rate == 0);
	assert_int_equal(c.drain_timeout, 0);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "download_min_rate = 16M\n", err, sizeof(err)), 0);
	assert_true(c.download_min_rate == 16u << 20);
	pd_config_release(&c);

	expect_error("request_read_timeout = 0\n",
		     "request_read_timeout must be 1..3600 (seconds)");
	expect_error("send_timeout = 0\n", "send_timeout must be 1..3600 (seconds)");
	expect_error("send_timeout = 3601\n", "send_timeout must be 1..3600");
	expect_error("drain_timeout = 3601\n", "drain_timeout must be 0..3600 (seconds)");
	expect_error("drain_timeout = -1\n", "drain_timeout");
	expect_error("resume_timeout = 3601\n", "resume_timeout must be 0..3600 (seconds)");
	expect_error("resume_timeout = 1\nresume_timeout = 2\n",
		     "t.conf:2: 'resume_timeout' is set twice");
	expect_error("request_read_timeout = 5s\n", "request_read_timeout");
	expect_error("download_min_rate = fast\n", "download_min_rate must be bytes a second");
	expect_error("drain_timeout = 1\ndrain_timeout = 2\n",
		     "t.conf:2: 'drain_timeout' is set twice");
}

static void test_nul_byte(void **state)
{
	struct pd_config c;
	char err[256] = "";
	const char text[] = "threads = 4\nlisten = a\0b\n";

	assert_int_equal(pd_config_init(&c), 0);
	assert_int_equal(pd_config_parse(&c, text, sizeof(text) - 1, "t.conf", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "t.conf:2: NUL byte"));
	pd_config_release(&c);
}

static void test_load_missing_file(void **state)
{
	struct pd_config c;
	char err[256] = "";

	assert_int_equal(pd_config_init(&c), 0);
	assert_true(pd_config_load(&c, "/nonexistent/procdiag.conf", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/procdiag.conf"));
	pd_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_full_file),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_dump_keys),
		cmocka_unit_test(test_timeout_keys),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_load_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
