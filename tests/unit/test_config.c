#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
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

static void test_crash_keys(void **state)
{
	struct pd_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(c.crash_timeout, 60);
	assert_false(c.crash_chain);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "crash_timeout = 1\ncrash_chain = true\n", err, sizeof(err)), 0);
	assert_int_equal(c.crash_timeout, 1);
	assert_true(c.crash_chain);
	pd_config_release(&c);
	expect_error("crash_timeout = 0\n", "t.conf:1: crash_timeout must be 1..3600 (seconds)");
	expect_error("crash_timeout = 3601\n", "crash_timeout must be 1..3600");
	expect_error("crash_chain = maybe\n", "t.conf:1: crash_chain must be true or false");
	expect_error("crash_chain = true\ncrash_chain = false\n",
		     "t.conf:2: 'crash_chain' is set twice");
}

static void test_rules(void **state)
{
	const char *text = "rules_interval_ms = 200\n"
			   "max_actions = 2\n"
			   "[rule hot-php]\n"
			   "name = php-fpm\n"
			   "cmdline = --pool www\n"
			   "cmdline_regex = ^php.*www$\n"
			   "uid = 0\n"
			   "cgroup = /system.slice/php-fpm.service\n"
			   "trigger = cpu_above 80.5 machine\n"
			   "for = 10s\n"
			   "action = dump+stacks\n"
			   "dump_type = Mini\n"
			   "format = zstd\n"
			   "count = 3\n"
			   "interval = 2m\n"
			   "\n"
			   "[ rule  site.rss ]\n"
			   "site = true\n"
			   "trigger = rss_above 512M\n"
			   "[rule boom]\n"
			   "trigger = crash SEGV,sigabrt,7\n"
			   "[rule t]\n"
			   "trigger = timer 300\n"
			   "action = stacks\n"
			   "[rule p]\n"
			   "trigger = pressure_above full 20 system\n";
	struct pd_config c;
	char err[256] = "";
	const struct pd_rule *r;
	struct strbuf sb = STRBUF_INIT;
	struct pd_rule_proc p = { .pid = 5, .uid = 0, .comm = "php-fpm", .exe_name = "php-fpm8.2",
				  .cmdline = "php-fpm: pool www --pool www",
				  .cgroup = "/system.slice/php-fpm.service/x" };

	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_int_equal(c.rules_interval_ms, 200);
	assert_int_equal(c.max_actions, 2);
	assert_int_equal(c.rules.n, 5);
	r = pd_ruleset_find(&c.rules, "hot-php");
	assert_non_null(r);
	assert_int_equal(r->line, 3);
	assert_int_equal(r->trigger.kind, PD_TRIGGER_CPU_ABOVE);
	assert_int_equal(r->trigger.centi, 8050);
	assert_true(r->trigger.machine);
	assert_int_equal(r->for_ms, 10000);
	assert_true(r->action.dump && r->action.stacks);
	assert_int_equal(r->action.format, PD_DUMP_FORMAT_ZSTD);
	assert_string_equal(r->action.type_text, "Mini");
	assert_int_equal(r->count, 3);
	assert_int_equal(r->interval_ms, 120000);
	assert_true(pd_rule_matches(r, &p));
	p.cgroup = "/system.slice/php-fpm.service2";
	assert_false(pd_rule_matches(r, &p));
	p.cgroup = "/system.slice/php-fpm.service";
	p.cmdline = "php-fpm: pool www --pool www x";
	assert_false(pd_rule_matches(r, &p)); /* the regex's $ */
	p.cmdline = "php-fpm: pool www --pool www";
	p.comm = "php";
	assert_false(pd_rule_matches(r, &p));
	p.exe_name = "php-fpm";
	assert_true(pd_rule_matches(r, &p));
	p.uid = 33;
	assert_false(pd_rule_matches(r, &p));
	assert_int_equal(pd_rule_trigger_format(&r->trigger, &sb), 0);
	assert_string_equal(sb.buf, "cpu_above 80.50 machine");

	r = pd_ruleset_find(&c.rules, "site.rss");
	assert_non_null(r);
	assert_int_equal(r->trigger.n, 512u << 20);
	assert_false(pd_rule_matches(r, &p));
	p.is_site = true;
	assert_true(pd_rule_matches(r, &p));
	assert_int_equal(r->count, 1);
	assert_int_equal(r->interval_ms, 60000);
	assert_true(r->action.dump && !r->action.stacks);

	r = pd_ruleset_find(&c.rules, "boom");
	assert_true(pd_rule_crash_signal(r, 11) && pd_rule_crash_signal(r, 6) &&
		    pd_rule_crash_signal(r, 7));
	assert_false(pd_rule_crash_signal(r, 8));
	strbuf_reset(&sb);
	pd_rule_trigger_format(&r->trigger, &sb);
	assert_string_equal(sb.buf, "crash SEGV,ABRT,BUS");
	r = pd_ruleset_find(&c.rules, "t");
	assert_int_equal(r->trigger.n, 300000);
	r = pd_ruleset_find(&c.rules, "p");
	assert_true(r->trigger.full && r->trigger.system);
	assert_int_equal(r->trigger.centi, 2000);
	strbuf_release(&sb);
	pd_config_release(&c);
}

static void test_rule_errors(void **state)
{
	expect_error("[rule a]\ntrigger = timer 5\nbogus = 1\n", "t.conf:3: unknown key 'bogus'");
	expect_error("[rule a]\nname = x\n", "t.conf:1: rule 'a' has no trigger");
	expect_error("[rule a]\ntrigger = timer 5\n[rule a]\ntrigger = timer 5\n",
		     "t.conf:3: a second rule named 'a'");
	expect_error("[rule a b]\n", "t.conf:1: a rule name");
	expect_error("[rules a]\n", "t.conf:1: unknown section");
	expect_error("[rule a\n", "t.conf:1: expected '[rule NAME]'");
	expect_error("[rule a]\ntrigger = cpu_above lots\n", "t.conf:2: trigger cpu_above");
	expect_error("[rule a]\ntrigger = cpu_above 101 machine\n", "t.conf:2: trigger cpu_above");
	expect_error("[rule a]\ntrigger = hot 5\n", "t.conf:2: unknown trigger 'hot'");
	expect_error("[rule a]\ntrigger = timer 5\ntrigger = timer 6\n", "t.conf:3: 'trigger' is set twice");
	expect_error("[rule a]\ntrigger = crash SEGV,HUP\n", "t.conf:2: trigger crash: 'HUP'");
	expect_error("[rule a]\ntrigger = crash\naction = stacks\n", "t.conf:1: rule 'a': a crash");
	expect_error("[rule a]\ntrigger = rss_above 5X\n", "t.conf:2: trigger rss_above");
	expect_error("[rule a]\ntrigger = pressure_above half 5\n", "t.conf:2: trigger pressure_above");
	expect_error("[rule a]\ntrigger = timer 5\nfor = soon\n", "t.conf:3: for must be a duration");
	expect_error("[rule a]\ntrigger = timer 5\ncmdline_regex = (\n", "t.conf:3: cmdline_regex");
	expect_error("[rule a]\ntrigger = timer 5\nuid = no-such-user-here\n", "t.conf:3: uid");
	expect_error("[rule a]\ntrigger = timer 5\naction = stacks\nformat = zip\n",
		     "t.conf:1: rule 'a': dump_type and format");
	expect_error("[rule a]\ntrigger = timer 5\ncount = -1\n", "t.conf:3: count");
	expect_error("[rule a]\ntrigger = timer 5\ndump_type = Huge\n", "t.conf:3: dump_type");
	expect_error("[rule a]\ntrigger = timer 5\nthreads = 4\n", "t.conf:3: unknown key 'threads'");
	expect_error("rules_interval_ms = 99\n", "t.conf:1: rules_interval_ms must be 100..60000");
	expect_error("max_actions = 17\n", "t.conf:1: max_actions must be 1..16");
}

static void test_rules_need_a_store(void **state)
{
	struct pd_config c;
	char err[256] = "";

	assert_int_equal(parse(&c, "threads = 2\n\n[rule a]\ntrigger = timer 5\n", err, sizeof(err)),
			 0);
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.conf:3: rule 'a' writes into the dump store"));
	pd_config_release(&c);
	assert_int_equal(parse(&c, "store_dir = /x\n[rule a]\ntrigger = timer 5\n", err,
			       sizeof(err)), 0);
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), 0);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), 0);
	pd_config_release(&c);
}

static void test_rule_proc_read(void **state)
{
	struct pd_rule_procbuf b = PD_RULE_PROCBUF_INIT;
	struct pd_rule_proc p;

	assert_int_equal(pd_rule_proc_read(getpid(), -1, &p, &b), 0);
	assert_int_equal(p.pid, getpid());
	assert_int_equal(p.uid, geteuid());
	assert_string_equal(p.comm, "test_config");
	assert_string_equal(p.exe_name, "test_config");
	assert_non_null(strstr(p.cmdline, "test_config"));
	assert_true(p.cgroup[0] == '/');
	assert_false(p.is_site);
	assert_int_equal(pd_rule_proc_read(4194304, -1, &p, &b), -ESRCH);
	pd_rule_procbuf_release(&b);
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

static void test_store_keys(void **state)
{
	struct pd_config c;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(&c, "", err, sizeof(err)), 0);
	assert_null(c.store_dir);
	assert_int_equal(c.store_limits.max_count, 20);
	assert_int_equal(c.store_limits.max_bytes, 0);
	assert_int_equal(c.store_limits.max_age_s, 0);
	pd_config_release(&c);
	assert_int_equal(parse(&c,
			       "store_dir = /var/lib/procdiag/store\n"
			       "store_max_count = 0\n"
			       "store_max_bytes = 10G\n"
			       "store_max_age = 7d\n",
			       err, sizeof(err)),
			 0);
	assert_string_equal(c.store_dir, "/var/lib/procdiag/store");
	assert_int_equal(c.store_limits.max_count, 0);
	assert_true(c.store_limits.max_bytes == 10ull << 30);
	assert_int_equal(c.store_limits.max_age_s, 7 * 86400);
	pd_config_release(&c);
	assert_int_equal(parse(&c, "store_max_age = 90\n", err, sizeof(err)), 0);
	assert_int_equal(c.store_limits.max_age_s, 90);
	pd_config_release(&c);
	expect_error("store_dir = relative/x", "t.conf:1: store_dir must be an absolute path");
	expect_error("store_max_count = -1", "t.conf:1: store_max_count must be");
	expect_error("store_max_bytes = 10X", "t.conf:1: store_max_bytes must be");
	expect_error("store_max_age = 5w", "t.conf:1: store_max_age must be");
	expect_error("store_max_age = 500ms", "t.conf:1: store_max_age must be");
	expect_error("store_dir = /a\nstore_dir = /b", "t.conf:2: 'store_dir' is set twice");
}

static void test_egress_sections(void **state)
{
	char keyfile[] = "/tmp/pd-test-key-XXXXXX";
	char text[1024], err[256] = "";
	struct pd_config c;
	const struct pd_egress_provider *p;
	int fd = mkstemp(keyfile);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "c2VjcmV0a2V5\nignored\n", 22), 22);
	close(fd);
	snprintf(text, sizeof(text),
		 "threads = 4\n"
		 "[egress share]\n"
		 "type = filesystem\n"
		 "directory = /mnt/dumps\n"
		 "blob_prefix = fleet\n"
		 "[egress blob]\n"
		 "type = azureBlobStorage\n"
		 "account_url = https://acct.blob.core.windows.net\n"
		 "container = dumps\n"
		 "account_key_file = %s\n"
		 "block_size = 8M\n"
		 "parallel = 2\n"
		 "[egress sas]\n"
		 "type = azureBlobStorage\n"
		 "account_url = http://127.0.0.1:10000/devstoreaccount1\n"
		 "container = c\n"
		 "sas_token = sv=2022&sig=SECRET\n",
		 keyfile);
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	unlink(keyfile);
	assert_int_equal(c.negress, 3);
	p = pd_config_egress(&c, "share");
	assert_non_null(p);
	assert_int_equal(p->type, PD_EGRESS_FILESYSTEM);
	assert_string_equal(p->directory, "/mnt/dumps");
	assert_string_equal(p->blob_prefix, "fleet");
	assert_int_equal(p->block_size, 4u << 20);
	assert_int_equal(p->parallel, 4);
	p = pd_config_egress(&c, "blob");
	assert_int_equal(p->type, PD_EGRESS_AZURE_BLOB);
	assert_string_equal(p->account_key, "c2VjcmV0a2V5"); /* its first line, read at load */
	assert_null(p->sas_token);
	assert_int_equal(p->block_size, 8u << 20);
	assert_int_equal(p->parallel, 2);
	p = pd_config_egress(&c, "sas");
	assert_string_equal(p->sas_token, "sv=2022&sig=SECRET");
	assert_null(pd_config_egress(&c, "nope"));
	pd_config_release(&c);

	expect_error("[egress x]\ndirectory = /a\n", "t.conf:1: [egress x] has no type");
	expect_error("[egress x]\ntype = s3\n", "t.conf:2: type must be filesystem or azureBlobStorage");
	expect_error("[egress x]\ntype = filesystem\n", "has no directory");
	expect_error("[egress x]\ntype = filesystem\ndirectory = rel\n", "t.conf:3: directory must be an absolute");
	expect_error("[egress x]\ntype = filesystem\ndirectory = /a\ncolour = red\n", "t.conf:4: unknown key 'colour'");
	expect_error("[egress x]\ntype = filesystem\ndirectory = /a\n[egress x]\n", "a second egress named 'x'");
	expect_error("[egress x/y]\n", "an egress name is");
	expect_error("[egress x]\ntype = azureBlobStorage\naccount_url = http://a\ncontainer = c\n",
		     "needs account_key(_file) or sas_token(_file)");
	expect_error("[egress x]\ntype = azureBlobStorage\naccount_url = http://a\ncontainer = c\n"
		     "account_key = k\nsas_token = s\n", "both an account key and a SAS token");
	expect_error("[egress x]\naccount_key_file = /nonexistent/key\n", "t.conf:2: /nonexistent/key:");
	expect_error("[egress x]\nparallel = 0\n", "parallel must be 1..64");
	expect_error("[egress x]\nblock_size = 1K\n", "block_size must be");
	expect_error("[egress x]\ntype = filesystem\ntype = filesystem\n", "given twice");

	/* a rule's egress = NAME: checked against the sections; a dump rule
	 * with egress needs no store */
	assert_int_equal(parse(&c, "[egress share]\ntype = filesystem\ndirectory = /d\n"
				   "[rule r]\ntrigger = timer 5\negress = share\n", err, sizeof(err)), 0);
	assert_string_equal(c.rules.v[0].action.egress, "share");
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), 0);
	{
		struct strbuf sb = STRBUF_INIT;

		assert_int_equal(pd_rule_format(&c.rules.v[0], &sb), 0);
		assert_non_null(strstr(sb.buf, "format = raw\negress = share\ncount = 1\n"));
		strbuf_release(&sb);
	}
	pd_config_release(&c);
	assert_int_equal(parse(&c, "[rule r]\ntrigger = timer 5\negress = nowhere\n", err,
			       sizeof(err)), 0);
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "t.conf:1: rule 'r' names egress 'nowhere'"));
	pd_config_release(&c);
	assert_int_equal(parse(&c, "[egress share]\ntype = filesystem\ndirectory = /d\n"
				   "[rule r]\ntrigger = timer 5\naction = dump+stacks\negress = share\n",
			       err, sizeof(err)), 0);
	assert_int_equal(pd_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no store_dir"));
	pd_config_release(&c);
	expect_error("[rule r]\ntrigger = timer 5\naction = stacks\negress = share\n",
		     "(and egress) are for an action with a dump");
	expect_error("[rule r]\ntrigger = crash\negress = share\n", "egress is not (yet) for crash");
	expect_error("[rule r]\ntrigger = timer 5\negress = a/b\n", "egress must name");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_full_file),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_dump_keys),
		cmocka_unit_test(test_timeout_keys),
		cmocka_unit_test(test_crash_keys),
		cmocka_unit_test(test_store_keys),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_egress_sections),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_rules_need_a_store),
		cmocka_unit_test(test_rule_proc_read),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_load_missing_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
