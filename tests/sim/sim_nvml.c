/* Simulated libnvidia-ml.so (NVML) for tests/sim.
 *
 * GPUs come from /proc/driver/nvidia/gpus/<bus id>/information when that
 * directory exists (inside a container the hook has set up), else from the
 * baked-in SIM_PROC (the simulated procfs, for the hook on the host).
 * Entries are sorted by name, i.e. PCI bus id order, like the real driver.
 *
 * A GPU is visible only if its device node is usable: open(O_RDWR) succeeds
 * or fails with ENXIO/ENODEV (the simulated node carries the real major 195
 * but no kernel driver answers it). ENOENT, EPERM (device cgroup) and EACCES
 * hide it. When the GPU list came from SIM_PROC and /dev/nvidia<minor> does
 * not exist, the baked-in SIM_DEV/nvidia<minor> is tried the same way. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_nvml.h"

#ifndef SIM_PROC
#define SIM_PROC "/nonexistent/proc/driver/nvidia/gpus"
#endif
#ifndef SIM_DEV
#define SIM_DEV "/nonexistent/dev"
#endif
#ifndef SIM_DRIVER_VERSION
#define SIM_DRIVER_VERSION "580.159.04"
#endif
#ifndef SIM_CUDA_VERSION
#define SIM_CUDA_VERSION 13000
#endif

#define REAL_PROC "/proc/driver/nvidia/gpus"
#define MAX_GPUS 64

struct nvmlDevice_st {
	char bus_id[256];
	char name[96];
	char uuid[96];
	unsigned int minor;
};

static struct nvmlDevice_st devices[MAX_GPUS];
static unsigned int device_count;
static int init_count;

static void trim(char *s)
{
	size_t n = strlen(s);
	size_t start = 0;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[start] == ' ' || s[start] == '\t')
		start++;
	memmove(s, s + start, n - start + 1);
}

/* Parses one information file; returns 0 when Model, GPU UUID and Device
 * Minor were all found. */
static int read_information(const char *path, struct nvmlDevice_st *dev)
{
	char line[256];
	int have = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		char *colon = strchr(line, ':');
		char *value;

		if (colon == NULL)
			continue;
		*colon = '\0';
		value = colon + 1;
		trim(line);
		trim(value);
		if (strcmp(line, "Model") == 0) {
			snprintf(dev->name, sizeof dev->name, "%s", value);
			have |= 1;
		} else if (strcmp(line, "GPU UUID") == 0) {
			snprintf(dev->uuid, sizeof dev->uuid, "%s", value);
			have |= 2;
		} else if (strcmp(line, "Device Minor") == 0) {
			dev->minor = (unsigned int)strtoul(value, NULL, 10);
			have |= 4;
		}
	}
	fclose(f);
	return have == 7 ? 0 : -1;
}

/* 0 when the node is usable, else the errno that hides it. */
static int try_node(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENXIO || errno == ENODEV)
		return 0;
	return errno;
}

static int node_usable(unsigned int minor, int from_sim)
{
	char path[4096];
	int err;

	snprintf(path, sizeof path, "/dev/nvidia%u", minor);
	err = try_node(path);
	if (err == ENOENT && from_sim) {
		snprintf(path, sizeof path, "%s/nvidia%u", SIM_DEV, minor);
		err = try_node(path);
	}
	return err == 0;
}

static int skip_dots(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static void scan(void)
{
	struct dirent **names = NULL;
	const char *root = REAL_PROC;
	int from_sim = 0;
	int n, i;

	device_count = 0;
	n = scandir(root, &names, skip_dots, alphasort);
	if (n < 0) {
		root = SIM_PROC;
		from_sim = 1;
		n = scandir(root, &names, skip_dots, alphasort);
	}
	if (n < 0)
		return;
	for (i = 0; i < n; i++) {
		char path[4096];
		struct nvmlDevice_st dev;

		memset(&dev, 0, sizeof dev);
		snprintf(dev.bus_id, sizeof dev.bus_id, "%s", names[i]->d_name);
		snprintf(path, sizeof path, "%s/%s/information", root, names[i]->d_name);
		if (device_count < MAX_GPUS && read_information(path, &dev) == 0
		    && node_usable(dev.minor, from_sim))
			devices[device_count++] = dev;
		free(names[i]);
	}
	free(names);
}

int nvmlInit_v2(void)
{
	if (init_count++ == 0)
		scan();
	return NVML_SUCCESS;
}

int nvmlInit(void)
{
	return nvmlInit_v2();
}

int nvmlShutdown(void)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (--init_count == 0)
		device_count = 0;
	return NVML_SUCCESS;
}

const char *nvmlErrorString(int result)
{
	switch (result) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
	case 5: return "Already Initialized";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	default: return "Unknown Error";
	}
}

static int copy_out(char *dst, unsigned int length, const char *src)
{
	if (dst == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(src) + 1 > length)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(dst, src, strlen(src) + 1);
	return NVML_SUCCESS;
}

static int check_device(nvmlDevice_t device)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (device == NULL || device < devices || device >= devices + device_count)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_SUCCESS;
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	return copy_out(version, length, SIM_DRIVER_VERSION);
}

int nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
	if (cudaDriverVersion == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*cudaDriverVersion = SIM_CUDA_VERSION;
	return NVML_SUCCESS;
}

int nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
	return nvmlSystemGetCudaDriverVersion(cudaDriverVersion);
}

int nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (deviceCount == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*deviceCount = device_count;
	return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (device == NULL || index >= device_count)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = &devices[index];
	return NVML_SUCCESS;
}

int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
	int rc = check_device(device);

	return rc != NVML_SUCCESS ? rc : copy_out(uuid, length, device->uuid);
}

int nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
	int rc = check_device(device);

	return rc != NVML_SUCCESS ? rc : copy_out(name, length, device->name);
}

int nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
	int rc = check_device(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (minorNumber == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*minorNumber = device->minor;
	return NVML_SUCCESS;
}

int nvmlDeviceGetBrand(nvmlDevice_t device, int *type)
{
	int rc = check_device(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (type == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*type = NVML_BRAND_TESLA;
	return NVML_SUCCESS;
}

int nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
	int rc = check_device(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (major == NULL || minor == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*major = 9;
	*minor = 0;
	return NVML_SUCCESS;
}
