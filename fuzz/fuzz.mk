# make fuzz's builder (GNU make; called from Makefile.am's fuzz target, which
# passes the variables below). Everything the harnesses link, procdiag's own
# code included, is compiled again with clang and coverage for libFuzzer, into
# _fuzz/ of the build tree; the normal build is not touched.
#
#   srcdir builddir   absolute source and build directories
#   FUZZ_CC           clang
#   HARNESSES         names: fuzz/fuzz_NAME.c -> _fuzz/bin/fuzz_NAME
#   SOURCES           the library sources (the .c files are used; a generated
#                     one is found in builddir)
#   DEP_CFLAGS        pkg-config cflags of the libraries
#   LIBS              Makefile.am's PD_LIBS (its .a archives are replaced)
#   PD_CRASH_CONFIG_PATH, PD_CORE_PATTERN_SAVED_PATH   the build's fixed paths
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS_FUZZ := -g -O1 $(SAN) -fsanitize=fuzzer-no-link -I$(srcdir) -I$(builddir) \
	-DPD_CRASH_CONFIG='"$(PD_CRASH_CONFIG_PATH)"' \
	-DPD_CORE_PATTERN_SAVED='"$(PD_CORE_PATTERN_SAVED_PATH)"' \
	$(DEP_CFLAGS) -pthread -Wall -Wextra -Wno-unused-parameter -MMD -MP
LDFLAGS_FUZZ := $(SAN) -fsanitize=fuzzer -pthread

out := $(builddir)/_fuzz
objs := $(patsubst %.c,$(out)/obj/%.o,$(filter %.c,$(SOURCES)))
bins := $(patsubst %,$(out)/bin/fuzz_%,$(HARNESSES))

build: $(bins)

$(out)/obj/%.o: $(srcdir)/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $*.c"
	@$(FUZZ_CC) $(CFLAGS_FUZZ) -c $< -o $@

# A generated source (handlers/assets_data.c) is in the build tree.
$(out)/obj/%.o: $(builddir)/%.c
	@mkdir -p $(dir $@)
	@echo "  FUZZCC   $*.c"
	@$(FUZZ_CC) $(CFLAGS_FUZZ) -c $< -o $@

$(out)/libpdfuzz.a: $(objs)
	@rm -f $@
	@ar rcs $@ $^

$(out)/bin/fuzz_%: $(out)/obj/fuzz/fuzz_%.o $(out)/libpdfuzz.a
	@mkdir -p $(dir $@)
	@echo "  FUZZLD   fuzz_$*"
	@$(FUZZ_CC) $(LDFLAGS_FUZZ) $^ $(filter-out %.a,$(LIBS)) -o $@

.SECONDARY:
.PHONY: build
-include $(shell find $(out)/obj -name '*.d' 2>/dev/null)
