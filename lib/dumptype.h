/* What a dump holds: Kudu's MINIDUMP_TYPE bits and dotnet-dump's names,
 * turned into the content mask the dump engine understands.
 *
 * The mini base is ALWAYS included: every thread's registers (NT_PRSTATUS,
 * NT_FPREGSET, NT_X86_XSTATE), its stack from SP-128 to the end of its
 * mapping, a few pages around each PC, the pages at each thread's fs_base
 * (TCB), the first page of every ELF mapping (build-ids), [vdso], the
 * executable's program headers and dynamic section, the r_debug/link_map
 * chain with its name strings, auxv, NT_FILE, NT_PRPSINFO, NT_SIGINFO.
 * The PD_DC_* bits add to it (CONTRACT §1; the engine uses only these).
 *
 * Pure: no system calls, so the table is unit-tested as it is.
 * docs/DUMPS.md ("dumpType") lists every bit and what it means here. */
#ifndef PD_DUMPTYPE_H
#define PD_DUMPTYPE_H

#include <stddef.h>
#include <stdint.h>

#define PD_DC_FILE_DATA 0x1u /* written private file mappings (.data/.bss/GOT) */
#define PD_DC_ANON	0x2u /* private anonymous memory (heap, anonymous mmaps) */
#define PD_DC_SHARED	0x4u /* shared anonymous / shmem mappings */
/* Everything the kernel would dump under the target's coredump_filter
 * (implies the above as the filter says). */
#define PD_DC_FULL	0x8u
#define PD_DC_ALL (PD_DC_FILE_DATA | PD_DC_ANON | PD_DC_SHARED | PD_DC_FULL)

/* Every bit dbghelp.h defines (MiniDumpValidTypeFlags). */
#define PD_MINIDUMP_VALID 0x01ffffffu

struct pd_dumptype {
	uint32_t bits;	  /* the MINIDUMP_TYPE asked for (a name's value) */
	unsigned content; /* PD_DC_* */
	uint32_t ignored; /* bits of `bits` with no Linux meaning: not honoured */
	const char *name; /* "Mini", "Heap", "Full", "Triage", or NULL for numbers */
};

/* Parses a dumpType: empty or NULL (= 0, mini), a decimal or 0x-hex
 * MINIDUMP_TYPE, or a name, case-insensitive: Mini, Normal, Triage,
 * Heap, WithHeap, Full. 0, -EINVAL (not a number or name), -ERANGE (a
 * number with bits outside PD_MINIDUMP_VALID; *bad gets them). */
int pd_dumptype_parse(const char *s, struct pd_dumptype *out, uint32_t *bad);
/* dotnet-monitor's `type` (Models/DumpType.cs): its enum by name, any
 * case, or by number: Full = 1, Mini = 2, WithHeap = 3, Triage = 4 (not
 * MINIDUMP_TYPE bits). NULL or empty is WithHeap, its default. out->name
 * is the enum's name. 0 or -EINVAL. */
int pd_dumptype_parse_monitor(const char *s, struct pd_dumptype *out);
/* The same for a number already parsed. */
int pd_dumptype_from_bits(uint32_t bits, struct pd_dumptype *out, uint32_t *bad);

/* How a single bit is treated. */
enum pd_dumpbit_kind {
	PD_DUMPBIT_CONTENT, /* adds to the content mask */
	PD_DUMPBIT_BASE,    /* what it asks for is always in the dump */
	PD_DUMPBIT_IGNORED, /* no Linux meaning: reported back as ignored */
};
struct pd_dumpbit {
	uint32_t bit;
	const char *name; /* dbghelp's name, e.g. "MiniDumpWithDataSegs" */
	enum pd_dumpbit_kind kind;
	unsigned content; /* PD_DC_* for PD_DUMPBIT_CONTENT */
};
/* The table, in bit order; *n gets its length. */
const struct pd_dumpbit *pd_dumpbits(size_t *n);

/* Writes the names of the set bits of `bits`, comma-separated
 * ("MiniDumpWithHandleData,MiniDumpWithTokenInformation"), into buf;
 * "" for 0. Truncated to len (always NUL-terminated when len > 0). */
void pd_dumpbits_names(uint32_t bits, char *buf, size_t len);

#endif
