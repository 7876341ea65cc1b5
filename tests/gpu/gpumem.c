/* Holds a known amount of GPU memory until killed, for `gpuhook ps` on a real GPU: dlopen
 * libcuda.so.1, create a context on device 0, allocate MIB MiB (0: the context alone, which
 * measures the context's own overhead) and write it, so the driver has committed every page,
 * print "gpumem: holding MIB MiB" and sleep. Needs no CUDA toolkit.
 * Build: gcc -O2 -o gpumem gpumem.c -ldl. Usage: gpumem MIB */
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
typedef CUresult (*cuCtxCreate_v2_t)(CUcontext *, unsigned, CUdevice);
typedef CUresult (*cuMemAlloc_v2_t)(CUdeviceptr *, size_t);
typedef CUresult (*cuMemsetD8_v2_t)(CUdeviceptr, unsigned char, size_t);
typedef CUresult (*cuCtxSynchronize_t)(void);

#define LOAD(name) \
    name##_t name = (name##_t)dlsym(lib, #name); \
    if (!name) { fprintf(stderr, "gpumem: missing %s\n", #name); return 2; }
#define CHECK(call) \
    do { CUresult r = (call); if (r) { fprintf(stderr, "gpumem: %s failed: %d\n", #call, r); return 3; } } while (0)

int main(int argc, char **argv) {
    char *end;
    long mib = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end != '\0' || mib < 0) { fprintf(stderr, "usage: gpumem MIB\n"); return 1; }
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { fprintf(stderr, "gpumem: dlopen libcuda.so.1: %s\n", dlerror()); return 1; }
    LOAD(cuInit) LOAD(cuDeviceGet) LOAD(cuCtxCreate_v2) LOAD(cuMemAlloc_v2) LOAD(cuMemsetD8_v2)
    LOAD(cuCtxSynchronize)
    CUdevice dev; CUcontext ctx; CUdeviceptr p;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate_v2(&ctx, 0, dev));
    size_t bytes = (size_t)mib << 20;
    if (bytes > 0) {
        CHECK(cuMemAlloc_v2(&p, bytes));
        CHECK(cuMemsetD8_v2(p, 0x5a, bytes));
    }
    CHECK(cuCtxSynchronize());
    printf("gpumem: holding %ld MiB\n", mib);
    fflush(stdout);
    for (;;) pause();
}
