/* Test tool for the real-GPU suite (cgroup v2): lists the eBPF device programs attached to a
 * cgroup and the length of each (its translated instructions), so the suite can tell whether a
 * second hook run stacked another prefix on the program.
 *
 * Usage: device-programs CGROUP_DIR    prints "programs=N insns=L1,L2,..."
 * Built on the GPU machine with gcc; no kernel headers needed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { BPF_PROG_GET_FD_BY_ID = 13, BPF_OBJ_GET_INFO_BY_FD = 15, BPF_PROG_QUERY = 16,
       ATTACH_CGROUP_DEVICE = 6 };

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s CGROUP_DIR\n", argv[0]); return 2; }
    int cgroup = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (cgroup < 0) { fprintf(stderr, "%s: %s\n", argv[1], strerror(errno)); return 1; }
    uint32_t ids[64] = { 0 };
    /* target_fd, attach_type, query_flags, attach_flags, prog_ids (u64), prog_cnt */
    struct { uint32_t target_fd, attach_type, query_flags, attach_flags; uint64_t prog_ids;
             uint32_t prog_cnt; uint32_t pad[9]; } query = {
        (uint32_t)cgroup, ATTACH_CGROUP_DEVICE, 0, 0, (uintptr_t)ids, 64, { 0 } };
    if (syscall(SYS_bpf, BPF_PROG_QUERY, &query, sizeof query) < 0) {
        fprintf(stderr, "query: %s\n", strerror(errno)); return 1;
    }
    printf("programs=%u insns=", query.prog_cnt);
    for (uint32_t i = 0; i < query.prog_cnt && i < 64; i++) {
        uint32_t by_id[4] = { ids[i], 0, 0, 0 };
        int fd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, by_id, sizeof by_id);
        if (fd < 0) { fprintf(stderr, "program %u: %s\n", ids[i], strerror(errno)); return 1; }
        /* struct bpf_prog_info: type, id, tag[8], jited_prog_len, xlated_prog_len, ... */
        uint32_t info[64] = { 0 };
        struct { uint32_t bpf_fd, info_len; uint64_t info; } get = {
            (uint32_t)fd, sizeof info, (uintptr_t)info };
        if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &get, sizeof get) < 0) {
            fprintf(stderr, "info %u: %s\n", ids[i], strerror(errno)); return 1;
        }
        printf("%s%u", i ? "," : "", info[5] / 8);
        close(fd);
    }
    printf("\n");
    return 0;
}
