/* procdiag dumps [--config FILE]... list|get ID|rm ID: the dump store read
 * directly (lib/store.h), as GET/DELETE /api/dumps do through the
 * responder (docs/STORE.md, docs/cli.md). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/numparse.h"
#include "handlers/conffile.h"
#include "lib/egress.h"
#include "lib/egress_azure.h"
#include "lib/memcopy.h" /* pd_pwrite_all */
#include "lib/operations.h" /* pd_store_push */
#include "lib/store.h"

static void dumps_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag dumps --config FILE [--json] list\n"
		"       procdiag dumps --config FILE get ID [-o FILE] [--file NAME]\n"
		"       procdiag dumps --config FILE rm ID\n"
		"       procdiag dumps --config FILE push ID --egress NAME [--file NAME]\n"
		"       procdiag dumps --config FILE --egress NAME [--json] list\n"
		"       procdiag dumps --config FILE --egress NAME get BLOB [-o FILE]\n\n"
		"The dump store of the configuration's store_dir (docs/STORE.md), read\n"
		"directly: no responder is needed.\n\n"
		"  -c, --config FILE   a configuration file (repeatable, read in order)\n"
		"      --json          list: the entries as GET /api/dumps gives them\n"
		"  -o, --output FILE   get: where to write (default ID-NAME in the current\n"
		"                      directory; '-' standard output). Holes of a sparse\n"
		"                      core stay holes in a file.\n"
		"      --file NAME     get, push: another file of the entry (e.g. stacks.txt)\n"
		"  -e, --egress NAME   the configuration's [egress NAME] (azureBlobStorage):\n"
		"                      push uploads entry ID as {prefix}/{host}/{site}/ID-FILE;\n"
		"                      list and get read the container (every host's blobs\n"
		"                      under the prefix) instead of the store. Ctrl-C during\n"
		"                      a push aborts it: no blob is left (docs/FLEET.md)\n"
		"  -h, --help          this text\n\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 3 no such entry or file.\n");
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v && *v ? v : dflt;
}

static int do_list(struct pd_store *s, bool as_json)
{
	json_t *a, *e;
	size_t i;
	int rc = pd_store_list(s, &a);

	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: cannot read %s: %s\n", pd_store_dir(s),
			strerror(-rc));
		return 1;
	}
	if (as_json) {
		rc = json_dumpf(a, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF;
		json_decref(a);
		return rc ? 1 : 0;
	}
	printf("%-28s %-20s %-6s %-24s %-16s %8s  %s\n", "ID", "CREATED", "KIND", "PROCESS",
	       "TRIGGER", "SIZE", "FILES");
	json_array_foreach(a, i, e)
	{
		char size[16], proc[64], trig[80], files[256] = "";
		json_t *f;
		size_t j;

		format_bytes((uint64_t)json_integer_value(json_object_get(e, "size")), false, size,
			     sizeof(size));
		snprintf(proc, sizeof(proc), "%.40s(%lld)", str(e, "process", "?"),
			 (long long)json_integer_value(json_object_get(e, "pid")));
		snprintf(trig, sizeof(trig), "%s%s%.64s", str(e, "trigger", "?"),
			 json_is_string(json_object_get(e, "rule")) ? ":" : "", str(e, "rule", ""));
		json_array_foreach(json_object_get(e, "files"), j, f)
		{
			size_t n = strlen(files);

			snprintf(files + n, sizeof(files) - n, "%s%s", j ? "," : "",
				 str(f, "name", "?"));
		}
		printf("%-28s %-20s %-6s %-24s %-16s %8s  %s\n", str(e, "id", "?"),
		       str(e, "created", "?"), str(e, "kind", "?"), proc, trig, size, files);
	}
	json_decref(a);
	return fflush(stdout) == EOF ? 1 : 0;
}

/* in's bytes [from, to) to out at the same offset (a file), or to seq
 * in order (out < 0: a pipe, a terminal). */
static int copy_range(int in, int out, FILE *seq, off_t from, off_t to)
{
	static char buf[1 << 16];

	while (from < to) {
		size_t want = (size_t)(to - from) < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
		ssize_t n = pread(in, buf, want, from);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if (out >= 0)
			rc = pd_pwrite_all(out, buf, (size_t)n, (uint64_t)from);
		else
			rc = fwrite(buf, 1, (size_t)n, seq) == (size_t)n ? 0 : -EIO;
		if (rc < 0)
			return rc;
		from += n;
	}
	return out >= 0 || fflush(seq) == 0 ? 0 : -EIO;
}

/* in to out: a regular file keeps in's holes (SEEK_DATA/SEEK_HOLE),
 * anything else gets every byte. */
static int copy_file(int in, int out)
{
	struct stat st, ost;
	off_t pos = 0;

	if (fstat(in, &st) < 0 || fstat(out, &ost) < 0)
		return -errno;
	if (!S_ISREG(ost.st_mode)) {
		int dfd = dup(out);
		FILE *f = dfd >= 0 ? fdopen(dfd, "wb") : NULL;
		int rc;

		if (!f) {
			rc = -errno;
			if (dfd >= 0)
				close(dfd);
			return rc;
		}
		rc = copy_range(in, -1, f, 0, st.st_size);
		if (fclose(f) != 0 && !rc)
			rc = -EIO;
		return rc;
	}
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		int rc;

		if (data < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (data < 0)
			return copy_range(in, out, NULL, pos, st.st_size);
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		rc = copy_range(in, out, NULL, data, hole);
		if (rc < 0)
			return rc;
		pos = hole;
	}
	return ftruncate(out, st.st_size) < 0 ? -errno : 0;
}

/* Opens entry id's file (NULL: its main file) with its meta: 0, or the
 * exit status after saying why. */
static int open_entry(struct pd_store *s, const char *id, const char *file, int *fd,
		      json_t **meta)
{
	int rc;

	if (file && !pd_store_name_valid(file)) {
		fprintf(stderr, "procdiag dumps: --file must be a file name of the entry, not '%s'\n",
			file);
		return 2;
	}
	rc = pd_store_open_entry(s, id, file, fd, meta);
	if (rc == -ENOENT) {
		fprintf(stderr, "procdiag dumps: %s: no such entry%s%s\n", id, file ? " or file " : "",
			file ? file : "");
		return 3;
	}
	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: %s: %s\n", id, strerror(-rc));
		return 1;
	}
	return 0;
}

static int do_get(struct pd_store *s, const char *id, const char *file, const char *output)
{
	char path[PD_STORE_ID_MAX + PD_STORE_NAME_MAX + 2];
	json_t *meta = NULL;
	int in, out, rc;

	rc = open_entry(s, id, file, &in, &meta);
	if (rc)
		return rc;
	if (!output) {
		snprintf(path, sizeof(path), "%s-%s", id,
			 file ? file : str(meta, "file", "file"));
		output = path;
	}
	json_decref(meta);
	if (!strcmp(output, "-"))
		out = STDOUT_FILENO;
	else
		out = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (out < 0) {
		fprintf(stderr, "procdiag dumps: %s: %s\n", output, strerror(errno));
		close(in);
		return 1;
	}
	rc = copy_file(in, out);
	close(in);
	if (out != STDOUT_FILENO && close(out) < 0 && !rc)
		rc = -errno;
	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: writing %s: %s\n", output, strerror(-rc));
		if (strcmp(output, "-"))
			unlink(output); /* nothing half written stays */
		return 1;
	}
	if (strcmp(output, "-"))
		fprintf(stderr, "procdiag dumps: wrote %s\n", output);
	return 0;
}

static int do_rm(struct pd_store *s, const char *id)
{
	int rc = pd_store_remove(s, id);

	if (rc == -ENOENT) {
		fprintf(stderr, "procdiag dumps: %s: no such entry\n", id);
		return 3;
	}
	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: cannot remove %s: %s\n", id, strerror(-rc));
		return 1;
	}
	return 0;
}

static volatile sig_atomic_t push_cancel;

static void on_push_signal(int sig)
{
	(void)sig;
	push_cancel = 1;
}

static int push_cancelled(void *arg)
{
	(void)arg;
	return push_cancel;
}

/* Uploads entry id's file to the provider, with the entry's meta.json as
 * the blob's metadata: lib/operations.h's pd_store_push, the job POST
 * /api/dumps/{id}/egress runs as an operation too. */
static int do_push(struct pd_store *s, const struct pd_egress_provider *p, const char *id,
		   const char *file)
{
	char host[256] = "", loc[2048], err[1024];
	struct sigaction sa = {.sa_handler = on_push_signal};
	const char *site;
	int rc;

	if (file && !pd_store_name_valid(file)) {
		fprintf(stderr, "procdiag dumps: --file must be a file name of the entry, not '%s'\n",
			file);
		return 2;
	}
	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* the responder's {site} (cli/serve.c): where its copies go too; NULL:
	 * the providers' "default" */
	site = getenv("WEBSITE_SITE_NAME");
	rc = pd_store_push(s, p, id, file, host, site && *site ? site : NULL, push_cancelled, NULL, loc, sizeof(loc),
			   NULL, err, sizeof(err));
	if (rc == -ENOENT || rc == -EINVAL) {
		fprintf(stderr, "procdiag dumps: %s\n", err);
		return 3;
	}
	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: push %s to %s failed, nothing left there: %s\n", id,
			p->name, err);
		return 1;
	}
	printf("%s\n", loc);
	return fflush(stdout) == EOF ? 1 : 0;
}

static int egress_list(const struct pd_egress_provider *p, bool as_json)
{
	char err[1024];
	json_t *a, *e;
	size_t i;
	int rc = pd_egress_azure_list(p, &a, err, sizeof(err));

	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: %s\n", err);
		return 1;
	}
	if (as_json) {
		rc = json_dumpf(a, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF;
		json_decref(a);
		return rc ? 1 : 0;
	}
	printf("%-29s %10s  %s\n", "LAST MODIFIED", "SIZE", "BLOB");
	json_array_foreach(a, i, e)
	{
		char size[16];

		format_bytes((uint64_t)json_integer_value(json_object_get(e, "size")), false, size,
			     sizeof(size));
		printf("%-29s %10s  %s\n", str(e, "lastModified", "?"), size, str(e, "name", "?"));
	}
	json_decref(a);
	return fflush(stdout) == EOF ? 1 : 0;
}

static int egress_get(const struct pd_egress_provider *p, const char *blob, const char *output)
{
	const char *base = strrchr(blob, '/');
	char err[1024];
	int fd, rc;

	if (!output)
		output = base ? base + 1 : blob;
	if (!*output || !strcmp(output, "-")) {
		fprintf(stderr, "procdiag dumps: get --egress writes a file: -o FILE\n");
		return 2;
	}
	fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "procdiag dumps: %s: %s\n", output, strerror(errno));
		return 1;
	}
	rc = pd_egress_azure_get(p, blob, fd, err, sizeof(err));
	if (close(fd) < 0 && !rc)
		rc = -errno, snprintf(err, sizeof(err), "%s: %s", output, strerror(errno));
	if (rc < 0) {
		unlink(output);
		fprintf(stderr, "procdiag dumps: %s\n", err);
		return rc == -ENOENT ? 3 : 1;
	}
	fprintf(stderr, "procdiag dumps: wrote %s\n", output);
	return 0;
}

int cmd_dumps(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
		{"output", required_argument, NULL, 'o'}, {"file", required_argument, NULL, 'f'},
		{"egress", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'},
		{0, 0, 0, 0},
	};
	const char *configs[8], *output = NULL, *file = NULL, *verb, *id = NULL, *egress = NULL;
	const struct pd_egress_provider *ep = NULL;
	int nconfig = 0, c, rc = 1;
	bool as_json = false;
	struct pd_config cfg;
	struct pd_store *s = NULL;
	char err[512];

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:o:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (nconfig == (int)(sizeof(configs) / sizeof(configs[0]))) {
				fprintf(stderr, "procdiag dumps: at most 8 --config files\n");
				return 2;
			}
			configs[nconfig++] = optarg;
			break;
		case 'j': as_json = true; break;
		case 'o': output = optarg; break;
		case 'f': file = optarg; break;
		case 'e': egress = optarg; break;
		case 'h': dumps_usage(stdout); return 0;
		default:
			fprintf(stderr, "procdiag dumps: unknown option '%s'\n", argv[optind - 1]);
			dumps_usage(stderr);
			return 2;
		}
	}
	verb = optind < argc ? argv[optind] : "list";
	if (egress && !strcmp(verb, "rm")) {
		fprintf(stderr, "procdiag dumps: rm is for the store, not --egress\n");
		return 2;
	}
	if (!egress && !strcmp(verb, "push")) {
		fprintf(stderr, "procdiag dumps: push needs --egress NAME\n");
		return 2;
	}
	if (!strcmp(verb, "get") || !strcmp(verb, "rm") || !strcmp(verb, "push")) {
		if (argc - optind != 2) {
			fprintf(stderr, "procdiag dumps: %s needs one %s\n", verb,
				egress && !strcmp(verb, "get") ? "BLOB" : "ID");
			dumps_usage(stderr);
			return 2;
		}
		id = argv[optind + 1];
		if (egress && !strcmp(verb, "get")) {
			if (file) {
				fprintf(stderr, "procdiag dumps: --file is for the store, not --egress\n");
				return 2;
			}
		} else if (!pd_store_id_valid(id)) {
			fprintf(stderr,
				"procdiag dumps: '%s' is not an id (YYYYMMDDTHHMMSSZ-PID-XXXX, as "
				"'procdiag dumps list' shows them)\n",
				id);
			return 2;
		}
	} else if (strcmp(verb, "list") || argc - optind > 1) {
		fprintf(stderr, "procdiag dumps: unknown command '%s'\n", verb);
		dumps_usage(stderr);
		return 2;
	}
	if ((output && strcmp(verb, "get")) || (file && strcmp(verb, "get") && strcmp(verb, "push"))) {
		fprintf(stderr, "procdiag dumps: -o is for get, --file for get and push\n");
		return 2;
	}
	if (!nconfig) {
		fprintf(stderr, "procdiag dumps: --config FILE names the configuration with "
				"store_dir\n");
		dumps_usage(stderr);
		return 2;
	}
	if (pd_config_init(&cfg) < 0) {
		fprintf(stderr, "procdiag dumps: out of memory\n");
		return 1;
	}
	for (int i = 0; i < nconfig; i++) {
		if (pd_config_load(&cfg, configs[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "procdiag dumps: %s\n", err);
			goto out;
		}
	}
	if (egress) {
		ep = pd_config_egress(&cfg, egress);
		if (!ep) {
			fprintf(stderr, "procdiag dumps: the configuration has no [egress %s]\n", egress);
			rc = 2;
			goto out;
		}
		if (ep->type != PD_EGRESS_AZURE_BLOB && strcmp(verb, "push")) {
			fprintf(stderr,
				"procdiag dumps: [egress %s] is a filesystem directory: list it with ls\n",
				egress);
			rc = 2;
			goto out;
		}
		if (!strcmp(verb, "list")) {
			rc = egress_list(ep, as_json);
			goto out;
		}
		if (!strcmp(verb, "get")) {
			rc = egress_get(ep, id, output);
			goto out;
		}
	}
	if (!cfg.store_dir) {
		fprintf(stderr, "procdiag dumps: the configuration has no store_dir\n");
		goto out;
	}
	if (access(cfg.store_dir, F_OK) < 0) { /* read, never made, here */
		fprintf(stderr, "procdiag dumps: the store %s: %s\n", cfg.store_dir, strerror(errno));
		goto out;
	}
	c = pd_store_open(cfg.store_dir, &cfg.store_limits, &s);
	if (c < 0) {
		fprintf(stderr, "procdiag dumps: cannot open the store %s: %s\n", cfg.store_dir,
			strerror(-c));
		goto out;
	}
	if (!strcmp(verb, "list"))
		rc = do_list(s, as_json);
	else if (!strcmp(verb, "get"))
		rc = do_get(s, id, file, output);
	else if (!strcmp(verb, "push"))
		rc = do_push(s, ep, id, file);
	else
		rc = do_rm(s, id);
out:
	pd_store_close(s);
	pd_config_release(&cfg);
	return rc;
}
