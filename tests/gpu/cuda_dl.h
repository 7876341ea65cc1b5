/* The CUDA driver API as the GPU suite's C programs use it: through dlopen("libcuda.so.1")
 * (whatever the container's ld cache resolves it to), so they need no CUDA toolkit to build or
 * run. Types and signatures as in cuda.h. Define PROG (the program's name, for messages)
 * before including; LOAD and CHECK expect a `void *lib` from dlopen and return from the
 * calling function on failure. */
#ifndef GPUHOOK_CUDA_DL_H
#define GPUHOOK_CUDA_DL_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream;
typedef unsigned long long CUdeviceptr;
typedef struct { char reserved[64]; } CUipcMemHandle;

typedef CUresult (*cuInit_t)(unsigned);
typedef CUresult (*cuDeviceGet_t)(CUdevice *, int);
typedef CUresult (*cuCtxCreate_v2_t)(CUcontext *, unsigned, CUdevice);
typedef CUresult (*cuModuleLoadData_t)(CUmodule *, const void *);
typedef CUresult (*cuModuleGetFunction_t)(CUfunction *, CUmodule, const char *);
typedef CUresult (*cuMemAlloc_v2_t)(CUdeviceptr *, size_t);
typedef CUresult (*cuMemcpyHtoD_v2_t)(CUdeviceptr, const void *, size_t);
typedef CUresult (*cuMemcpyDtoH_v2_t)(void *, CUdeviceptr, size_t);
typedef CUresult (*cuLaunchKernel_t)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                                     unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*cuCtxSynchronize_t)(void);
typedef CUresult (*cuGetErrorName_t)(CUresult, const char **);
typedef CUresult (*cuIpcGetMemHandle_t)(CUipcMemHandle *, CUdeviceptr);
typedef CUresult (*cuIpcOpenMemHandle_v2_t)(CUdeviceptr *, CUipcMemHandle, unsigned);
typedef CUresult (*cuIpcCloseMemHandle_t)(CUdeviceptr);

#define LOAD(name) \
    name##_t name = (name##_t)dlsym(lib, #name); \
    if (!name) { fprintf(stderr, PROG ": missing %s\n", #name); return 2; }
#define CHECK(call) \
    do { CUresult r = (call); if (r) { fprintf(stderr, PROG ": %s failed: %d\n", #call, r); return 3; } } while (0)

#endif
