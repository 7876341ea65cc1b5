/* A CUDA driver-API check that needs no CUDA toolkit in the container: dlopen libcuda.so.1
 * (whatever the container's ld cache resolves it to), JIT a PTX vector add, run it on 1M floats
 * and check every result on the host side. Prints which libcuda file it used, so the suite can
 * tell the library came from gpuhook's mount and not the image. Build: gcc -O2 -o vecadd vecadd.c -ldl */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#define PROG "vecadd"
#include "cuda_dl.h"

static const char *PTX =
    ".version 7.0\n.target sm_50\n.address_size 64\n"
    ".visible .entry vecadd(.param .u64 a, .param .u64 b, .param .u64 c, .param .u32 n)\n{\n"
    "  .reg .pred %p;\n  .reg .b32 %r<6>;\n  .reg .f32 %f<4>;\n  .reg .b64 %rd<11>;\n"
    "  ld.param.u64 %rd1, [a];\n  ld.param.u64 %rd2, [b];\n  ld.param.u64 %rd3, [c];\n"
    "  ld.param.u32 %r1, [n];\n  mov.u32 %r2, %ctaid.x;\n  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n  mad.lo.s32 %r5, %r2, %r3, %r4;\n  setp.ge.u32 %p, %r5, %r1;\n"
    "  @%p bra DONE;\n  cvta.to.global.u64 %rd4, %rd1;\n  cvta.to.global.u64 %rd5, %rd2;\n"
    "  cvta.to.global.u64 %rd6, %rd3;\n  mul.wide.u32 %rd7, %r5, 4;\n  add.s64 %rd8, %rd4, %rd7;\n"
    "  add.s64 %rd9, %rd5, %rd7;\n  add.s64 %rd10, %rd6, %rd7;\n  ld.global.f32 %f1, [%rd8];\n"
    "  ld.global.f32 %f2, [%rd9];\n  add.f32 %f3, %f1, %f2;\n  st.global.f32 [%rd10], %f3;\n"
    "DONE:\n  ret;\n}\n";

int main(void) {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { fprintf(stderr, "vecadd: dlopen libcuda.so.1: %s\n", dlerror()); return 1; }
    LOAD(cuInit) LOAD(cuDeviceGet) LOAD(cuCtxCreate_v2) LOAD(cuModuleLoadData)
    LOAD(cuModuleGetFunction) LOAD(cuMemAlloc_v2) LOAD(cuMemcpyHtoD_v2) LOAD(cuMemcpyDtoH_v2)
    LOAD(cuLaunchKernel) LOAD(cuCtxSynchronize)
    Dl_info info;
    const char *path = dladdr((void *)cuInit, &info) && info.dli_fname ? info.dli_fname : "?";
    char real[4096];
    if (!realpath(path, real)) strncpy(real, path, sizeof real - 1);

    unsigned n = 1u << 20;
    size_t bytes = n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    for (unsigned i = 0; i < n; i++) { a[i] = (float)i; b[i] = 2.0f * (float)i; c[i] = -1.0f; }
    CUdevice dev; CUcontext ctx; CUmodule mod; CUfunction fn; CUdeviceptr da, db, dc;
    CHECK(cuInit(0));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate_v2(&ctx, 0, dev));
    CHECK(cuModuleLoadData(&mod, PTX));
    CHECK(cuModuleGetFunction(&fn, mod, "vecadd"));
    CHECK(cuMemAlloc_v2(&da, bytes)); CHECK(cuMemAlloc_v2(&db, bytes)); CHECK(cuMemAlloc_v2(&dc, bytes));
    CHECK(cuMemcpyHtoD_v2(da, a, bytes)); CHECK(cuMemcpyHtoD_v2(db, b, bytes));
    void *args[] = {&da, &db, &dc, &n};
    CHECK(cuLaunchKernel(fn, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemcpyDtoH_v2(c, dc, bytes));
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) if (c[i] != 3.0f * (float)i) bad++;
    printf("vecadd: %s n=%u wrong=%u libcuda=%s\n", bad ? "FAIL" : "OK", n, bad, real);
    return bad ? 4 : 0;
}
