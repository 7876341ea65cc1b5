/* Test tool for the real-GPU suite (cgroup v2): does to a container's cgroup what systemd does
 * on `systemctl daemon-reload` for a unit whose DeviceAllow= came from the OCI spec. It builds
 * an eBPF device program that allows exactly the given rules and denies everything else, and
 * attaches it next to the programs already there (BPF_F_ALLOW_MULTI: a device opens only if
 * every attached program allows it). A GPU that was allowed only behind the spec's back is
 * then denied; one whose rule is in the spec still opens.
 *
 * Usage: reapply-devices CGROUP_DIR RULE...   RULE = "TYPE MAJOR MINOR ACCESS", e.g.
 *        "c 195 0 rw", "a -1 -1 rwm" (TYPE a|b|c, -1 = any number, ACCESS of r w m).
 * Built on the GPU machine with gcc; no kernel headers needed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct insn { uint8_t code; uint8_t regs; int16_t off; int32_t imm; };

enum { BPF_PROG_LOAD = 5, BPF_PROG_ATTACH = 8, PROG_TYPE_CGROUP_DEVICE = 15,
       ATTACH_CGROUP_DEVICE = 6, F_ALLOW_MULTI = 2 };
/* Opcodes used (see the kernel's BPF instruction set document). */
enum { LDX_W = 0x61, AND_K = 0x57, RSH_K = 0x77, MOV_K = 0xb7, MOV_X = 0xbf, JNE_K = 0x55,
       EXIT = 0x95 };

static struct insn prog[4096];
static int len;

static void emit(uint8_t code, int dst, int src, int16_t off, int32_t imm) {
    if (len == (int)(sizeof prog / sizeof prog[0])) { fprintf(stderr, "too many rules\n"); exit(2); }
    prog[len++] = (struct insn){ code, (uint8_t)(dst | src << 4), off, imm };
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s CGROUP_DIR RULE...\n", argv[0]); return 2; }
    /* ctx: u32 access_type (access << 16 | type), u32 major, u32 minor */
    emit(LDX_W, 2, 1, 0, 0); emit(AND_K, 2, 0, 0, 0xffff);   /* r2 = type */
    emit(LDX_W, 3, 1, 0, 0); emit(RSH_K, 3, 0, 0, 16);       /* r3 = access */
    emit(LDX_W, 4, 1, 4, 0);                                 /* r4 = major */
    emit(LDX_W, 5, 1, 8, 0);                                 /* r5 = minor */
    for (int i = 2; i < argc; i++) {
        char type, access[8]; long major, minor;
        if (sscanf(argv[i], " %c %ld %ld %7s", &type, &major, &minor, access) != 4) {
            fprintf(stderr, "bad rule: %s\n", argv[i]); return 2;
        }
        int mask = (strchr(access, 'm') ? 1 : 0) | (strchr(access, 'r') ? 2 : 0) | (strchr(access, 'w') ? 4 : 0);
        int jumps[4], n = 0;
        if (type != 'a') { jumps[n++] = len; emit(JNE_K, 2, 0, 0, type == 'b' ? 1 : 2); }
        if (mask != 7) { emit(MOV_X, 0, 3, 0, 0); emit(AND_K, 0, 0, 0, ~mask); jumps[n++] = len; emit(JNE_K, 0, 0, 0, 0); }
        if (major >= 0) { jumps[n++] = len; emit(JNE_K, 4, 0, 0, (int32_t)major); }
        if (minor >= 0) { jumps[n++] = len; emit(JNE_K, 5, 0, 0, (int32_t)minor); }
        emit(MOV_K, 0, 0, 0, 1); emit(EXIT, 0, 0, 0, 0);      /* allowed */
        for (int j = 0; j < n; j++) prog[jumps[j]].off = (int16_t)(len - jumps[j] - 1);
    }
    emit(MOV_K, 0, 0, 0, 0); emit(EXIT, 0, 0, 0, 0);          /* anything else: denied */

    static char log[65536];
    struct { uint32_t prog_type, insn_cnt; uint64_t insns, license; uint32_t log_level, log_size;
             uint64_t log_buf; uint8_t rest[88]; } load = {
        PROG_TYPE_CGROUP_DEVICE, (uint32_t)len, (uintptr_t)prog, (uintptr_t)"GPL", 1, sizeof log,
        (uintptr_t)log, { 0 } };
    int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (fd < 0) { fprintf(stderr, "load: %s\n%s\n", strerror(errno), log); return 1; }
    int cgroup = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (cgroup < 0) { fprintf(stderr, "%s: %s\n", argv[1], strerror(errno)); return 1; }
    uint32_t attach[8] = { (uint32_t)cgroup, (uint32_t)fd, ATTACH_CGROUP_DEVICE, F_ALLOW_MULTI };
    if (syscall(SYS_bpf, BPF_PROG_ATTACH, attach, sizeof attach) < 0) {
        fprintf(stderr, "attach to %s: %s\n", argv[1], strerror(errno)); return 1;
    }
    printf("attached a %d-instruction device program allowing %d rules to %s\n", len, argc - 2, argv[1]);
    return 0;
}
