/* Stacks folded for flame graphs: identical stacks merged and counted.
 *
 *   struct pd_fold *f = pd_fold_new();
 *   uint32_t v[3] = { pd_fold_frame(f, "worker", NULL),     // the root
 *                     pd_fold_frame(f, "main", "/bin/x"),
 *                     pd_fold_frame(f, "spin", "/bin/x") };  // the leaf
 *   pd_fold_add(f, v, 3, 1);        // one sample of this stack
 *   pd_fold_folded(f, &sb);         // "worker;main;spin 1\n"
 *   json_t *ss = pd_fold_speedscope(f, "name");
 *   pd_fold_free(f);
 *
 * Frames are (name, module) pairs, both raw bytes (module NULL: none); a
 * stack is a list of frame indices, root first. No HTTP, no processes: the
 * profiler (lib/profile.h), the stacks page and the unit tests all fold
 * through here.
 *
 * Folded text (Brendan Gregg's collapsed format, what flamegraph.pl and
 * speedscope import): one line per distinct stack, `root;...;leaf COUNT`,
 * lines sorted by their bytes. In a frame name `;` (the separator) becomes
 * `:` and a control byte (a newline would end the line) becomes `?`;
 * spaces stay (the count is what follows the line's last space). An empty
 * name is `[unknown]`.
 *
 * Speedscope (https://www.speedscope.app/file-format-schema.json): one
 * profile of type "sampled", unit "none", each distinct stack once in
 * `samples` (frame indices, root first) with its count in `weights`;
 * `shared.frames` holds {name, file: module} with the names unescaped
 * (raw, invalid UTF-8 escaped as common/utf8.h does). */
#ifndef PD_FOLD_H
#define PD_FOLD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct pd_fold;
struct strbuf;

/* Bounds (a profile of a hostile process could otherwise have a distinct
 * stack per sample, 1024 threads x 60 s x 99 Hz of them): past
 * PD_FOLD_FRAMES_MAX frames a new frame is the frame PD_FOLD_BEYOND, and
 * past PD_FOLD_STACKS_MAX stacks a new stack is counted as its root frame
 * followed by PD_FOLD_BEYOND (samples are never lost, only detail). */
#define PD_FOLD_FRAMES_MAX 65536
#define PD_FOLD_STACKS_MAX 32768
#define PD_FOLD_BEYOND	   "[beyond procdiag's bound]"

/* NULL on allocation failure. */
struct pd_fold *pd_fold_new(void);
void pd_fold_free(struct pd_fold *f);

/* The index of the frame (name, module), added the first time; -1 when out
 * of memory. */
int64_t pd_fold_frame(struct pd_fold *f, const char *name, const char *module);

/* count samples of the stack v[0..n) (root first; n may be 0). 0 or -ENOMEM
 * (or -EINVAL for an index that is not a frame). */
int pd_fold_add(struct pd_fold *f, const uint32_t *v, size_t n, uint64_t count);

/* Samples added (the sum of every stack's count), distinct stacks. */
uint64_t pd_fold_samples(const struct pd_fold *f);
size_t pd_fold_stacks(const struct pd_fold *f);

/* Appends the folded text. 0 or -ENOMEM. */
int pd_fold_folded(const struct pd_fold *f, struct strbuf *out);

/* The speedscope file (a new reference; NULL when out of memory); name is
 * the file's and the profile's name. */
json_t *pd_fold_speedscope(const struct pd_fold *f, const char *name);

/* The folded text of a speedscope file of this kind (the one above, also
 * after it went through JSON): 0, -EINVAL when it is not one, -ENOMEM. */
int pd_fold_speedscope_folded(const json_t *ss, struct strbuf *out);

/* One frame name as the folded text writes it, appended to out. */
int pd_fold_escape(struct strbuf *out, const char *name);

#endif
