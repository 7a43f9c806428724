/* procdiag dumps [--config FILE]... list|get ID|rm ID: the dump store read
 * directly (lib/store.h), as GET/DELETE /api/dumps do through the
 * responder (docs/STORE.md, docs/cli.md). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "handlers/conffile.h"
#include "lib/store.h"

static void dumps_usage(FILE *out)
{
	fprintf(out,
		"usage: procdiag dumps --config FILE [--json] list\n"
		"       procdiag dumps --config FILE get ID [-o FILE] [--file NAME]\n"
		"       procdiag dumps --config FILE rm ID\n\n"
		"The dump store of the configuration's store_dir (docs/STORE.md), read\n"
		"directly: no responder is needed.\n\n"
		"  -c, --config FILE   a configuration file (repeatable, read in order)\n"
		"      --json          list: the entries as GET /api/dumps gives them\n"
		"  -o, --output FILE   get: where to write (default ID-NAME in the current\n"
		"                      directory; '-' standard output). Holes of a sparse\n"
		"                      core stay holes in a file.\n"
		"      --file NAME     get: another file of the entry (e.g. stacks.txt)\n"
		"  -h, --help          this text\n\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 3 no such entry or file.\n");
}

/* 1536 -> "1.5K": the list's sizes. */
static void human(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "KMGTP";
	double x = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(buf, size, "%llu", (unsigned long long)v);
		return;
	}
	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	snprintf(buf, size, x < 10 ? "%.1f%c" : "%.0f%c", x, units[u]);
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

		human((uint64_t)json_integer_value(json_object_get(e, "size")), size, sizeof(size));
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

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* in's bytes [from, to) to out at the same offset (a file) or in order (a
 * pipe: at == false). */
static int copy_range(int in, int out, off_t from, off_t to, bool at)
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
		if (at) {
			ssize_t w = pwrite(out, buf, (size_t)n, from);

			if (w != n)
				return w < 0 ? -errno : -EIO;
		} else if ((rc = write_all(out, buf, (size_t)n)) < 0) {
			return rc;
		}
		from += n;
	}
	return 0;
}

/* in to out: a regular file keeps in's holes (SEEK_DATA/SEEK_HOLE),
 * anything else gets every byte. */
static int copy_file(int in, int out)
{
	struct stat st, ost;
	off_t pos = 0;

	if (fstat(in, &st) < 0 || fstat(out, &ost) < 0)
		return -errno;
	if (!S_ISREG(ost.st_mode))
		return copy_range(in, out, 0, st.st_size, false);
	while (pos < st.st_size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		int rc;

		if (data < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (data < 0)
			return copy_range(in, out, pos, st.st_size, true);
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			hole = st.st_size;
		rc = copy_range(in, out, data, hole, true);
		if (rc < 0)
			return rc;
		pos = hole;
	}
	return ftruncate(out, st.st_size) < 0 ? -errno : 0;
}

static int do_get(struct pd_store *s, const char *id, const char *file, const char *output)
{
	char path[PD_STORE_ID_MAX + PD_STORE_NAME_MAX + 2];
	json_t *meta = NULL;
	int in, out, rc;

	if (file && !pd_store_name_valid(file)) {
		fprintf(stderr, "procdiag dumps: --file must be a file name of the entry, not '%s'\n",
			file);
		return 2;
	}
	rc = pd_store_open_entry(s, id, file, &in, &meta);
	if (rc == -ENOENT) {
		fprintf(stderr, "procdiag dumps: %s: no such entry%s%s\n", id, file ? " or file " : "",
			file ? file : "");
		return 3;
	}
	if (rc < 0) {
		fprintf(stderr, "procdiag dumps: %s: %s\n", id, strerror(-rc));
		return 1;
	}
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

int cmd_dumps(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
		{"output", required_argument, NULL, 'o'}, {"file", required_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},	  {0, 0, 0, 0},
	};
	const char *configs[8], *output = NULL, *file = NULL, *verb, *id = NULL;
	int nconfig = 0, c, rc = 1;
	bool as_json = false;
	struct pd_config cfg;
	struct pd_store *s = NULL;
	char err[512];

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
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
		case 'h': dumps_usage(stdout); return 0;
		default:
			fprintf(stderr, "procdiag dumps: unknown option '%s'\n", argv[optind - 1]);
			dumps_usage(stderr);
			return 2;
		}
	}
	verb = optind < argc ? argv[optind] : "list";
	if (!strcmp(verb, "get") || !strcmp(verb, "rm")) {
		if (argc - optind != 2) {
			fprintf(stderr, "procdiag dumps: %s needs one ID\n", verb);
			dumps_usage(stderr);
			return 2;
		}
		id = argv[optind + 1];
		if (!pd_store_id_valid(id)) {
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
	if ((output || file) && strcmp(verb, "get")) {
		fprintf(stderr, "procdiag dumps: -o and --file are for get\n");
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
	else
		rc = do_rm(s, id);
out:
	pd_store_close(s);
	pd_config_release(&cfg);
	return rc;
}
