/* Process instance ids: see lib/instance.h. */
#include "config.h"

#include "lib/instance.h"

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static uint64_t boot_seed[2];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

/* splitmix64's finalizer: a bijective 64-bit mix with good avalanche. */
static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void read_boot_id(void)
{
	char buf[64] = "";
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	uint64_t h = 0xcbf29ce484222325ULL;

	if (fd >= 0)
		close(fd);
	/* Without a boot id (no procfs sysctls) uids are unique per pid and
	 * start time only: still stable, just not across reboots. */
	for (ssize_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
	boot_seed[0] = mix(h);
	boot_seed[1] = mix(h ^ 0x9e3779b97f4a7c15ULL);
}

void pd_instance_uid(int pid, uint64_t starttime, char *out)
{
	uint64_t hi, lo;

	pthread_once(&boot_once, read_boot_id);
	hi = mix(boot_seed[0] ^ mix((uint64_t)(unsigned)pid ^ mix(starttime)));
	lo = mix(boot_seed[1] ^ mix(starttime + 0x632be59bd9b4e019ULL) ^ (uint64_t)(unsigned)pid);
	/* RFC 9562 version 8 (custom) and variant 10. */
	hi = (hi & ~0xf000ULL) | 0x8000ULL;
	lo = (lo & ~(3ULL << 62)) | (2ULL << 62);
	snprintf(out, PD_UID_LEN + 1, "%08llx-%04llx-%04llx-%04llx-%012llx",
		 (unsigned long long)(hi >> 32), (unsigned long long)((hi >> 16) & 0xffff),
		 (unsigned long long)(hi & 0xffff), (unsigned long long)(lo >> 48),
		 (unsigned long long)(lo & 0xffffffffffffULL));
}

bool pd_instance_uid_valid(const char *s)
{
	if (strlen(s) != PD_UID_LEN)
		return false;
	for (int i = 0; i < PD_UID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}
