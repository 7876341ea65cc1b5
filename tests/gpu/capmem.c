/* What a capped container's CUDA sees, for the real-GPU suite's memory-cap checks: dlopen
 * libcuda.so.1, create a context on device 0, print what cuMemGetInfo reports, the SM count
 * (an MPS compute share lowers it), and whether allocations of 1 GiB and 3 GiB succeed (each
 * freed again). With HOLD set it then sleeps, holding the context (so two containers can be
 * capped at once). Needs no CUDA toolkit.
 * Build: gcc -O2 -o capmem capmem.c -ldl.
 * Prints: capmem: free=<MiB> total=<MiB> sms=<n> alloc1g=<ok|refused(<code>)> alloc3g=<...> */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef unsigned long long CUdeviceptr;

typedef CUresult (*cuInit_t)(unsigned);
typedef CUresult (*cuDeviceGet_t)(CUdevice *, int);
typedef CUresult (*cuDeviceGetAttribute_t)(int *, int, CUdevice);
typedef CUresult (*cuCtxCreate_v2_t)(CUcontext *, unsigned, CUdevice);
typedef CUresult (*cuMemGetInfo_v2_t)(size_t *, size_t *);
typedef CUresult (*cuMemAlloc_v2_t)(CUdeviceptr *, size_t);
typedef CUresult (*cuMemFree_v2_t)(CUdeviceptr);

/* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
#define SM_COUNT 16

#define LOAD(name) \
    name##_t name = (name##_t)dlsym(lib, #name); \
    if (!name) { fprintf(stderr, "capmem: missing %s\n", #name); return 2; }
#define CHECK(call) \
    do { CUresult r = (call); if (r) { fprintf(stderr, "capmem: %s failed: %d\n", #call, r); return 3; } } while (0)

static void try_alloc(cuMemAlloc_v2_t alloc, cuMemFree_v2_t release, size_t gib, char *out, size_t len)
{
    CUdeviceptr p;
    CUresult r = alloc(&p, gib << 30);
    if (r == 0) {
        release(p);
        snprintf(out, len, "ok");
    } else {
        snprintf(out, len, "refused(%d)", r);
    }
}

int main(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { fprintf(stderr, "capmem: dlopen libcuda.so.1: %s\n", dlerror()); return 1; }
    LOAD(cuInit) LOAD(cuDeviceGet) LOAD(cuDeviceGetAttribute) LOAD(cuCtxCreate_v2)
    LOAD(cuMemGetInfo_v2) LOAD(cuMemAlloc_v2) LOAD(cuMemFree_v2)
    CUdevice dev; CUcontext ctx; size_t free_b, total_b; int sms;
    char one[32], three[32];
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate_v2(&ctx, 0, dev));
    CHECK(cuMemGetInfo_v2(&free_b, &total_b));
    CHECK(cuDeviceGetAttribute(&sms, SM_COUNT, dev));
    try_alloc(cuMemAlloc_v2, cuMemFree_v2, 1, one, sizeof one);
    try_alloc(cuMemAlloc_v2, cuMemFree_v2, 3, three, sizeof three);
    printf("capmem: free=%zu total=%zu sms=%d alloc1g=%s alloc3g=%s\n",
           free_b >> 20, total_b >> 20, sms, one, three);
    fflush(stdout);
    if (getenv("HOLD") != NULL)
        for (;;) pause();
    return 0;
}
