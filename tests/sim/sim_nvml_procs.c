/* Simulated NVML, part two: the GPU processes, memory and utilisation that
 * `gpuhook ps` and `gpuhook metrics` read. Linked into the same
 * libnvidia-ml.so as sim_nvml.c and built on its public calls only.
 *
 * Everything comes from the process table SIM_PROCESSES (OUT/gpu-processes),
 * read again on every call so a test can change it between two queries:
 *
 *   # comment
 *   process GPU-<uuid> <pid> <bytes used> <types>
 *   utilization GPU-<uuid> <gpu %> <memory %>
 *
 * <types> is nvidia-smi's notation: C (compute), G (graphics), M (an MPS
 * client), joined by '+' (M+C, C+G). A process is in the compute list when it
 * has C, the graphics list with G, the MPS list with M, so an M+C client is
 * listed twice, as by the real driver. Each GPU has SIM_MEMORY_TOTAL bytes;
 * its used memory is the sum of its processes' bytes, none reserved. A GPU
 * without a utilization line reports 0 % and 0 %. An absent file means no
 * process anywhere. Malformed lines are skipped. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_nvml.h"

#ifndef SIM_PROCESSES
#define SIM_PROCESSES "/nonexistent/gpu-processes"
#endif
/* An H100 80GB HBM3: 81559 MiB. */
#define SIM_MEMORY_TOTAL (81559ull << 20)

enum list { COMPUTE = 'C', GRAPHICS = 'G', MPS = 'M' };

/* The device's UUID, or an NVML error for a bad handle. */
static int uuid_of(nvmlDevice_t device, char *uuid, unsigned int size)
{
	return nvmlDeviceGetUUID(device, uuid, size);
}

/* Whether the '+'-joined type list (M+C) holds the letter. */
static int has_type(const char *types, char letter)
{
	for (const char *t = types; *t != '\0'; t++)
		if (*t == letter && (t == types || t[-1] == '+') && (t[1] == '\0' || t[1] == '+'))
			return 1;
	return 0;
}

/* Calls `each` for every process line of GPU `uuid`; returns how many. */
static unsigned int each_process(const char *uuid,
				 void (*each)(unsigned int n, unsigned int pid,
					      unsigned long long bytes, const char *types, void *ctx),
				 void *ctx)
{
	char line[512];
	unsigned int n = 0;
	FILE *f = fopen(SIM_PROCESSES, "re");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL) {
		char kind[32], gpu[128], types[32];
		unsigned int pid;
		unsigned long long bytes;

		if (sscanf(line, "%31s %127s %u %llu %31s", kind, gpu, &pid, &bytes, types) != 5
		    || strcmp(kind, "process") != 0 || strcmp(gpu, uuid) != 0)
			continue;
		each(n++, pid, bytes, types, ctx);
	}
	fclose(f);
	return n;
}

struct listing {
	enum list list;
	nvmlProcessInfo_t *infos;
	unsigned int room, count;
};

static void add_to_listing(unsigned int n, unsigned int pid, unsigned long long bytes,
			   const char *types, void *ctx)
{
	struct listing *l = ctx;

	(void)n;
	if (!has_type(types, (char)l->list))
		return;
	if (l->infos != NULL && l->count < l->room) {
		l->infos[l->count].pid = pid;
		l->infos[l->count].usedGpuMemory = bytes;
		l->infos[l->count].gpuInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT;
		l->infos[l->count].computeInstanceId = NVML_VALUE_NOT_AVAILABLE_UINT;
	}
	l->count++;
}

/* The real calls' contract: *infoCount in is the room in infos (which may be
 * NULL when it is 0), out the number of processes; too little room gives
 * NVML_ERROR_INSUFFICIENT_SIZE with the needed count. */
static int running(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos,
		   enum list list)
{
	char uuid[96];
	struct listing l = { list, infos, 0, 0 };
	int rc = uuid_of(device, uuid, sizeof uuid);

	if (rc != NVML_SUCCESS)
		return rc;
	if (infoCount == NULL || (infos == NULL && *infoCount != 0))
		return NVML_ERROR_INVALID_ARGUMENT;
	l.room = *infoCount;
	each_process(uuid, add_to_listing, &l);
	*infoCount = l.count;
	return l.count > l.room ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, COMPUTE);
}

int nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, COMPUTE);
}

int nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, GRAPHICS);
}

int nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, GRAPHICS);
}

int nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, MPS);
}

int nvmlDeviceGetMPSComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos)
{
	return running(device, infoCount, infos, MPS);
}

/* Sums each distinct process once: an M+C or C+G process holds its memory once. */
static void add_bytes(unsigned int n, unsigned int pid, unsigned long long bytes,
		      const char *types, void *ctx)
{
	(void)n;
	(void)pid;
	(void)types;
	*(unsigned long long *)ctx += bytes;
}

static int used_bytes(nvmlDevice_t device, unsigned long long *used)
{
	char uuid[96];
	int rc = uuid_of(device, uuid, sizeof uuid);

	if (rc != NVML_SUCCESS)
		return rc;
	*used = 0;
	each_process(uuid, add_bytes, used);
	if (*used > SIM_MEMORY_TOTAL)
		*used = SIM_MEMORY_TOTAL;
	return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	unsigned long long used;
	int rc;

	if (memory == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	rc = used_bytes(device, &used);
	if (rc != NVML_SUCCESS)
		return rc;
	memory->total = SIM_MEMORY_TOTAL;
	memory->used = used;
	memory->free = SIM_MEMORY_TOTAL - used;
	return NVML_SUCCESS;
}

int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
	unsigned long long used;
	int rc;

	if (memory == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	/* The real library checks the struct version the caller set. */
	if (memory->version != nvmlMemory_v2)
		return NVML_ERROR_INVALID_ARGUMENT;
	rc = used_bytes(device, &used);
	if (rc != NVML_SUCCESS)
		return rc;
	memory->total = SIM_MEMORY_TOTAL;
	memory->reserved = 0;
	memory->used = used;
	memory->free = SIM_MEMORY_TOTAL - used;
	return NVML_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	char uuid[96], line[512];
	int rc = uuid_of(device, uuid, sizeof uuid);
	FILE *f;

	if (rc != NVML_SUCCESS)
		return rc;
	if (utilization == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	utilization->gpu = utilization->memory = 0;
	f = fopen(SIM_PROCESSES, "re");
	if (f == NULL)
		return NVML_SUCCESS;
	while (fgets(line, sizeof line, f) != NULL) {
		char kind[32], gpu[128];
		unsigned int busy, memory;

		if (sscanf(line, "%31s %127s %u %u", kind, gpu, &busy, &memory) == 4
		    && strcmp(kind, "utilization") == 0 && strcmp(gpu, uuid) == 0
		    && busy <= 100 && memory <= 100) {
			utilization->gpu = busy;
			utilization->memory = memory;
		}
	}
	fclose(f);
	return NVML_SUCCESS;
}
