/* Simulated NVML, part three: what GPU memory caps use. Linked into the same
 * libnvidia-ml.so as sim_nvml.c and built on its public calls only.
 *
 * - nvmlDeviceGetHandleByUUID: a whole GPU by its UUID (case as reported).
 * - nvmlDeviceGetComputeMode: the number in the file SIM_COMPUTE_MODE (0
 *   Default, 2 Prohibited, 3 Exclusive_Process), read on every call; absent
 *   means 0.
 * - nvmlDeviceSetMemoryLimits_v1 (driver r615 and later), only when built
 *   with SIM_MEMORY_LIMITS defined to a file (make-driver.sh with
 *   SIM_NVML_MEMORY_LIMITS=1), as a driver 580 NVML does not have it: appends
 *   one line per call to that file, `<GPU UUID> <cgroup directory> <soft>
 *   <hard>`. */
#include <stdio.h>
#include <string.h>

#include "sim_nvml.h"

#ifndef SIM_COMPUTE_MODE
#define SIM_COMPUTE_MODE "/nonexistent/compute-mode"
#endif

int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
	unsigned int count, i;
	char found[96];
	int rc = nvmlDeviceGetCount_v2(&count);

	if (rc != NVML_SUCCESS)
		return rc;
	if (uuid == NULL || device == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	for (i = 0; i < count; i++) {
		nvmlDevice_t candidate;

		if (nvmlDeviceGetHandleByIndex_v2(i, &candidate) == NVML_SUCCESS
		    && nvmlDeviceGetUUID(candidate, found, sizeof found) == NVML_SUCCESS
		    && strcmp(found, uuid) == 0) {
			*device = candidate;
			return NVML_SUCCESS;
		}
	}
	return NVML_ERROR_NOT_FOUND;
}

int nvmlDeviceGetComputeMode(nvmlDevice_t device, int *mode)
{
	char uuid[96];
	int rc = nvmlDeviceGetUUID(device, uuid, sizeof uuid);
	FILE *f;

	if (rc != NVML_SUCCESS)
		return rc;
	if (mode == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*mode = 0;
	f = fopen(SIM_COMPUTE_MODE, "re");
	if (f != NULL) {
		if (fscanf(f, "%d", mode) != 1)
			*mode = 0;
		fclose(f);
	}
	return NVML_SUCCESS;
}

#ifdef SIM_MEMORY_LIMITS
typedef struct {
	const char *nameSpace;
	unsigned long long softLimit;
	unsigned long long hardLimit;
} nvmlSetMemoryLimits_v1_t;

int nvmlDeviceSetMemoryLimits_v1(nvmlDevice_t device, nvmlSetMemoryLimits_v1_t *limits)
{
	char uuid[96];
	int rc = nvmlDeviceGetUUID(device, uuid, sizeof uuid);
	FILE *f;

	if (rc != NVML_SUCCESS)
		return rc;
	if (limits == NULL || limits->nameSpace == NULL || limits->softLimit > limits->hardLimit)
		return NVML_ERROR_INVALID_ARGUMENT;
	f = fopen(SIM_MEMORY_LIMITS, "ae");
	if (f == NULL)
		return NVML_ERROR_UNKNOWN;
	fprintf(f, "%s %s %llu %llu\n", uuid, limits->nameSpace, limits->softLimit, limits->hardLimit);
	fclose(f);
	return NVML_SUCCESS;
}
#endif
