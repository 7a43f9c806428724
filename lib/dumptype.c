/* MINIDUMP_TYPE (dbghelp.h) on Linux. Each documented bit either adds
 * memory to the dump (a PD_DC_* bit), asks for something every procdiag
 * dump already holds, or has no Linux meaning and is reported back. */
#include "config.h"

#include "lib/dumptype.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/numparse.h"

static const struct pd_dumpbit bits[] = {
	{0x00000001, "MiniDumpWithDataSegs", PD_DUMPBIT_CONTENT, PD_DC_FILE_DATA},
	{0x00000002, "MiniDumpWithFullMemory", PD_DUMPBIT_CONTENT, PD_DC_FULL},
	{0x00000004, "MiniDumpWithHandleData", PD_DUMPBIT_IGNORED, 0},
	{0x00000008, "MiniDumpFilterMemory", PD_DUMPBIT_IGNORED, 0},
	{0x00000010, "MiniDumpScanMemory", PD_DUMPBIT_IGNORED, 0},
	{0x00000020, "MiniDumpWithUnloadedModules", PD_DUMPBIT_IGNORED, 0},
	{0x00000040, "MiniDumpWithIndirectlyReferencedMemory", PD_DUMPBIT_IGNORED, 0},
	{0x00000080, "MiniDumpFilterModulePaths", PD_DUMPBIT_IGNORED, 0},
	/* PEB/TEB: the TCB pages at each fs_base and auxv. */
	{0x00000100, "MiniDumpWithProcessThreadData", PD_DUMPBIT_BASE, 0},
	{0x00000200, "MiniDumpWithPrivateReadWriteMemory", PD_DUMPBIT_CONTENT, PD_DC_ANON},
	{0x00000400, "MiniDumpWithoutOptionalData", PD_DUMPBIT_IGNORED, 0},
	/* Every mapping has its program header and NT_FILE entry. */
	{0x00000800, "MiniDumpWithFullMemoryInfo", PD_DUMPBIT_BASE, 0},
	/* NT_PRSTATUS carries each thread's times and signal state. */
	{0x00001000, "MiniDumpWithThreadInfo", PD_DUMPBIT_BASE, 0},
	{0x00002000, "MiniDumpWithCodeSegs", PD_DUMPBIT_IGNORED, 0},
	{0x00004000, "MiniDumpWithoutAuxiliaryState", PD_DUMPBIT_IGNORED, 0},
	{0x00008000, "MiniDumpWithFullAuxiliaryState", PD_DUMPBIT_IGNORED, 0},
	/* Copy-on-write memory is what written private file mappings are. */
	{0x00010000, "MiniDumpWithPrivateWriteCopyMemory", PD_DUMPBIT_CONTENT, PD_DC_FILE_DATA},
	/* Unreadable pages always become zeros of the same length. */
	{0x00020000, "MiniDumpIgnoreInaccessibleMemory", PD_DUMPBIT_BASE, 0},
	{0x00040000, "MiniDumpWithTokenInformation", PD_DUMPBIT_IGNORED, 0},
	/* The first page of every ELF mapping. */
	{0x00080000, "MiniDumpWithModuleHeaders", PD_DUMPBIT_BASE, 0},
	{0x00100000, "MiniDumpFilterTriage", PD_DUMPBIT_IGNORED, 0},
	/* NT_X86_XSTATE is always written. */
	{0x00200000, "MiniDumpWithAvxXStateContext", PD_DUMPBIT_BASE, 0},
	{0x00400000, "MiniDumpWithIptTrace", PD_DUMPBIT_IGNORED, 0},
	{0x00800000, "MiniDumpScanInaccessiblePartialPages", PD_DUMPBIT_IGNORED, 0},
	/* VM_IO / VM_PFNMAP mappings are skipped, as the kernel does. */
	{0x01000000, "MiniDumpFilterWriteCombinedMemory", PD_DUMPBIT_BASE, 0},
};

/* dotnet-dump / dotnet-monitor names and the bits they stand for. */
static const struct {
	const char *name;
	uint32_t bits;
} names[] = {
	{"Mini", 0},
	{"Normal", 0},
	{"Triage", 0x00100000},
	{"Heap", 0x00000201},
	{"WithHeap", 0x00000201},
	{"Full", 0x00000002},
};

/* dotnet-monitor's DumpType, in the enum's order (Full = 1, ...), and the
 * names above that give their content. */
static const char *const monitor_types[] = {"Full", "Mini", "WithHeap", "Triage"};

const struct pd_dumpbit *pd_dumpbits(size_t *n)
{
	*n = sizeof(bits) / sizeof(bits[0]);
	return bits;
}

int pd_dumptype_from_bits(uint32_t v, struct pd_dumptype *out, uint32_t *bad)
{
	struct pd_dumptype t = {.bits = v};

	if (v & ~PD_MINIDUMP_VALID) {
		if (bad)
			*bad = v & ~PD_MINIDUMP_VALID;
		return -ERANGE;
	}
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (!(v & bits[i].bit))
			continue;
		if (bits[i].kind == PD_DUMPBIT_CONTENT)
			t.content |= bits[i].content;
		else if (bits[i].kind == PD_DUMPBIT_IGNORED)
			t.ignored |= bits[i].bit;
	}
	*out = t;
	return 0;
}

int pd_dumptype_parse(const char *s, struct pd_dumptype *out, uint32_t *bad)
{
	uint64_t v;
	size_t len = s ? strlen(s) : 0;
	int rc;

	if (len == 0)
		return pd_dumptype_from_bits(0, out, bad);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			rc = pd_dumptype_from_bits(names[i].bits, out, bad);
			out->name = names[i].name;
			return rc;
		}
	}
	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		rc = parse_hex_u64(s + 2, len - 2, &v);
	else
		rc = parse_u64(s, len, UINT64_MAX, &v);
	if (rc == -ERANGE || (rc == 0 && v > UINT32_MAX)) {
		/* MINIDUMP_TYPE is 32 bits: everything above is undefined. */
		if (bad)
			*bad = 0xffffffffu & ~PD_MINIDUMP_VALID;
		return -ERANGE;
	}
	if (rc < 0)
		return -EINVAL;
	return pd_dumptype_from_bits((uint32_t)v, out, bad);
}

int pd_dumptype_parse_monitor(const char *s, struct pd_dumptype *out)
{
	size_t n = sizeof(monitor_types) / sizeof(monitor_types[0]);
	uint64_t v;

	if (!s || !*s)
		s = "WithHeap";
	if (parse_u64(s, strlen(s), n, &v) == 0 && v >= 1)
		s = monitor_types[v - 1];
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(s, monitor_types[i]))
			return pd_dumptype_parse(monitor_types[i], out, NULL);
	return -EINVAL;
}

void pd_dumpbits_names(uint32_t v, char *buf, size_t len)
{
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		int n;

		if (!(v & bits[i].bit))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", bits[i].name);
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0'; /* whole names only */
			return;
		}
		used += (size_t)n;
	}
}
