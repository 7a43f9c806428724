#include "config.h"

#include "lib/coreread.h"

#include <elf.h>
#include <errno.h>
#include <gelf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#define PD_EM EM_X86_64
#elif defined(__aarch64__)
#define PD_EM EM_AARCH64
#else
#error "procdiag reads cores of x86_64 and aarch64 only"
#endif

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;

static void elf_init(void)
{
	elf_version(EV_CURRENT);
}

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

static int cmp_load(const void *a, const void *b)
{
	const struct pd_core_load *x = a, *y = b;

	return (x->vaddr > y->vaddr) - (x->vaddr < y->vaddr);
}

/* NT_FILE: count, page size, count x (start, end, page offset), then count
 * NUL-terminated names. Every length is checked: the core may be anyone's. */
static int parse_nt_file(struct pd_core *c, const unsigned char *d, size_t len)
{
	uint64_t count, page, triple[3];
	size_t names, slen;
	const char *s, *end;

	if (len < 16)
		return -EINVAL;
	memcpy(&count, d, 8);
	memcpy(&page, d + 8, 8);
	if (count > (len - 16) / 24)
		return -EINVAL;
	names = 16 + (size_t)count * 24;
	slen = len - names;
	c->file = calloc(count ? count : 1, sizeof(*c->file));
	c->file_strings = malloc(slen + 1);
	if (!c->file || !c->file_strings)
		return -ENOMEM;
	memcpy(c->file_strings, d + names, slen);
	c->file_strings[slen] = '\0';
	s = c->file_strings;
	end = c->file_strings + slen;
	for (uint64_t i = 0; i < count; i++) {
		size_t n;

		if (s >= end)
			return -EINVAL;
		memcpy(triple, d + 16 + i * 24, sizeof(triple));
		n = strnlen(s, (size_t)(end - s));
		if (triple[1] < triple[0] || (page && triple[2] > UINT64_MAX / page))
			return -EINVAL;
		c->file[i] = (struct pd_core_file){
			.start = triple[0], .end = triple[1], .pgoff = triple[2] * page, .path = s};
		s += n + 1;
	}
	c->nfile = (size_t)count;
	return 0;
}

static int read_notes(struct pd_core *c, Elf *elf, const GElf_Phdr *ph)
{
	Elf_Data *data;
	GElf_Nhdr nh;
	size_t off = 0, name_off, desc_off;
	int rc;

	if (ph->p_offset > c->size || ph->p_filesz > c->size - ph->p_offset)
		return -EINVAL;
	data = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset, ph->p_filesz, ELF_T_NHDR);
	if (!data)
		return -EINVAL;
	while (off < data->d_size &&
	       (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
		const char *name = (const char *)data->d_buf + name_off;
		const unsigned char *desc = (const unsigned char *)data->d_buf + desc_off;

		if (nh.n_namesz != sizeof("CORE") || memcmp(name, "CORE", sizeof("CORE")))
			continue;
		if (nh.n_type == NT_FILE && !c->file) {
			rc = parse_nt_file(c, desc, nh.n_descsz);
			if (rc < 0)
				return rc;
		} else if (nh.n_type == NT_AUXV && !c->auxv) {
			c->auxv = malloc(nh.n_descsz ? nh.n_descsz : 1);
			if (!c->auxv)
				return -ENOMEM;
			memcpy(c->auxv, desc, nh.n_descsz);
			c->auxv_len = nh.n_descsz;
		}
	}
	return 0;
}

int pd_core_open(int fd, struct pd_core *c)
{
	GElf_Ehdr eh;
	struct stat st;
	size_t phnum;
	Elf *elf = NULL;
	int rc = -EINVAL;

	*c = (struct pd_core)PD_CORE_INIT;
	c->fd = fd;
	pthread_once(&elf_once, elf_init);
	if (fstat(fd, &st) < 0)
		return -errno;
	c->size = (uint64_t)st.st_size;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf)
		return -EINVAL;
	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_type != ET_CORE || eh.e_machine != PD_EM || elf_getphdrnum(elf, &phnum) < 0)
		goto out;
	c->load = calloc(phnum ? phnum : 1, sizeof(*c->load));
	if (!c->load) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph))
			goto out;
		if (ph.p_type == PT_NOTE) {
			rc = read_notes(c, elf, &ph);
			if (rc < 0)
				goto out;
			rc = -EINVAL;
		} else if (ph.p_type == PT_LOAD) {
			c->load[c->nload++] = (struct pd_core_load){.vaddr = ph.p_vaddr,
								    .memsz = ph.p_memsz,
								    .offset = ph.p_offset,
								    .filesz = ph.p_filesz,
								    .flags = ph.p_flags};
		}
	}
	qsort(c->load, c->nload, sizeof(*c->load), cmp_load);
	rc = 0;
out:
	elf_end(elf);
	if (rc < 0)
		pd_core_release(c);
	return rc;
}

void pd_core_release(struct pd_core *c)
{
	free(c->load);
	free(c->file);
	free(c->file_strings);
	free(c->auxv);
	*c = (struct pd_core)PD_CORE_INIT;
}

const struct pd_core_load *pd_core_load_at(const struct pd_core *c, uint64_t vaddr)
{
	size_t lo = 0, hi = c->nload;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct pd_core_load *l = &c->load[mid];

		if (vaddr < l->vaddr)
			hi = mid;
		else if (vaddr - l->vaddr >= l->memsz)
			lo = mid + 1;
		else
			return l;
	}
	return NULL;
}

int pd_core_read(const struct pd_core *c, uint64_t vaddr, void *buf, size_t len)
{
	unsigned char *out = buf;

	while (len) {
		const struct pd_core_load *l = pd_core_load_at(c, vaddr);
		uint64_t rel, chunk;
		ssize_t n;

		if (!l)
			return -EFAULT;
		rel = vaddr - l->vaddr;
		/* (written so that a huge p_offset cannot wrap around) */
		if (rel >= l->filesz || l->offset > c->size || l->filesz > c->size - l->offset)
			return -EFAULT;
		chunk = l->filesz - rel;
		if (chunk > len)
			chunk = len;
		n = pread(c->fd, out, (size_t)chunk, (off_t)(l->offset + rel));
		if (n < 0)
			return -errno;
		if ((uint64_t)n != chunk)
			return -EFAULT; /* the core is shorter than its headers say */
		out += chunk;
		vaddr += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

int pd_core_auxv(const struct pd_core *c, uint64_t type, uint64_t *val)
{
	for (size_t off = 0; off + 16 <= c->auxv_len; off += 16) {
		uint64_t kv[2];

		memcpy(kv, c->auxv + off, sizeof(kv));
		if (kv[0] == AT_NULL)
			break;
		if (kv[0] == type) {
			*val = kv[1];
			return 0;
		}
	}
	return -ENOENT;
}
