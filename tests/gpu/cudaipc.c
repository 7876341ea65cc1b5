/* CUDA IPC between two processes (two containers in tests/gpu/workloads.sh), driver API only
 * (see cuda_dl.h). Build: gcc -O2 -o cudaipc cudaipc.c -ldl
 *
 *   cudaipc export DIR  allocates 1M uint32 on GPU 0, fills them with i*7+3, writes the IPC
 *                       handle to DIR/handle (hex, made atomically), then holds the memory until
 *                       DIR/done exists (at most 120 s)
 *   cudaipc import DIR  opens DIR/handle with cuIpcOpenMemHandle, copies the memory back and
 *                       checks every value
 *
 * Prints one result line, `cudaipc export: OK ...` or `cudaipc import: OK n=1048576 wrong=0`,
 * or the call that failed with its CUDA error name. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG "cudaipc"
#include "cuda_dl.h"

#define N (1u << 20)
#define HOLD_SECONDS 120

static void *lib;

static const char *error_name(CUresult rc)
{
    const char *name = NULL;
    cuGetErrorName_t get = (cuGetErrorName_t)dlsym(lib, "cuGetErrorName");
    return get && get(rc, &name) == 0 && name ? name : "?";
}

static int context(void)
{
    LOAD(cuInit) LOAD(cuDeviceGet) LOAD(cuCtxCreate_v2)
    CUdevice dev;
    CUcontext ctx;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate_v2(&ctx, 0, dev));
    return 0;
}

static int export(const char *dir)
{
    LOAD(cuMemAlloc_v2) LOAD(cuMemcpyHtoD_v2) LOAD(cuIpcGetMemHandle)
    uint32_t *values = malloc(N * sizeof *values);
    CUdeviceptr ptr;
    CUipcMemHandle handle;
    char path[4096], tmp[4096];
    if (!values) return 1;
    for (uint32_t i = 0; i < N; i++) values[i] = i * 7u + 3u;
    CHECK(cuMemAlloc_v2(&ptr, N * sizeof *values));
    CHECK(cuMemcpyHtoD_v2(ptr, values, N * sizeof *values));
    CHECK(cuIpcGetMemHandle(&handle, ptr));
    snprintf(path, sizeof path, "%s/handle", dir);
    snprintf(tmp, sizeof tmp, "%s/handle.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) { perror("cudaipc: handle.tmp"); return 1; }
    for (size_t i = 0; i < sizeof handle.reserved; i++)
        fprintf(f, "%02x", (unsigned char)handle.reserved[i]);
    fprintf(f, "\n");
    if (fclose(f) || rename(tmp, path)) { perror("cudaipc: handle"); return 1; }
    printf("cudaipc export: handle written, pid %d, holding %u values\n", (int)getpid(), N);
    fflush(stdout);
    snprintf(path, sizeof path, "%s/done", dir);
    for (int i = 0; i < HOLD_SECONDS * 20; i++) {
        if (access(path, F_OK) == 0) {
            printf("cudaipc export: OK (released after the importer finished)\n");
            return 0;
        }
        nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
    }
    printf("cudaipc export: no %s after %d s\n", path, HOLD_SECONDS);
    return 6;
}

static int import(const char *dir)
{
    LOAD(cuMemcpyDtoH_v2) LOAD(cuIpcCloseMemHandle)
    cuIpcOpenMemHandle_v2_t open_handle =
        (cuIpcOpenMemHandle_v2_t)dlsym(lib, "cuIpcOpenMemHandle_v2");
    if (!open_handle) open_handle = (cuIpcOpenMemHandle_v2_t)dlsym(lib, "cuIpcOpenMemHandle");
    if (!open_handle) { fprintf(stderr, "cudaipc: missing cuIpcOpenMemHandle\n"); return 2; }
    CUipcMemHandle handle;
    char path[4096];
    snprintf(path, sizeof path, "%s/handle", dir);
    FILE *f = fopen(path, "r");
    if (!f) { perror("cudaipc: handle"); return 1; }
    for (size_t i = 0; i < sizeof handle.reserved; i++) {
        unsigned byte;
        if (fscanf(f, "%2x", &byte) != 1) { fprintf(stderr, "cudaipc: short handle\n"); return 1; }
        handle.reserved[i] = (char)byte;
    }
    fclose(f);
    CUdeviceptr ptr;
    CUresult rc = open_handle(&ptr, handle, 1 /* CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS */);
    if (rc) {
        printf("cudaipc import: cuIpcOpenMemHandle failed: %d %s\n", rc, error_name(rc));
        return 5;
    }
    uint32_t *values = malloc(N * sizeof *values);
    if (!values) return 1;
    CHECK(cuMemcpyDtoH_v2(values, ptr, N * sizeof *values));
    unsigned wrong = 0;
    for (uint32_t i = 0; i < N; i++) if (values[i] != i * 7u + 3u) wrong++;
    CHECK(cuIpcCloseMemHandle(ptr));
    printf("cudaipc import: %s n=%u wrong=%u\n", wrong ? "FAIL" : "OK", N, wrong);
    return wrong ? 4 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "export") && strcmp(argv[1], "import"))) {
        fprintf(stderr, "usage: cudaipc export|import DIR\n");
        return 2;
    }
    lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { fprintf(stderr, "cudaipc: dlopen libcuda.so.1: %s\n", dlerror()); return 1; }
    int rc = context();
    if (rc) return rc;
    return strcmp(argv[1], "export") == 0 ? export(argv[2]) : import(argv[2]);
}
