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
 * not exist, the baked-in SIM_DEV/nvidia<minor> is tried the same way.
 *
 * MIG: a GPU is in MIG mode when capabilities/gpu<minor>/mig exists in the
 * driver's procfs (/proc/driver/nvidia/capabilities next to the gpus/ used,
 * else SIM_CAPS). Its MIG devices are the gi<G>/ci<C> directories there, in
 * (G, C) order, numbered from 0; one is visible only if the nodes
 * /dev/nvidia-caps/nvidia-cap<minor> named by both gi<G>/access and
 * gi<G>/ci<C>/access (DeviceFileMinor) are usable, as above but opened
 * read-only. So a container lists exactly the MIG devices whose capability
 * files and nodes the hook gave it. MIG UUIDs are derived:
 * MIG-5e1f0000-0000-4000-9000-<minor:4 hex><G:4 hex><C:4 hex>.
 *
 * Every GPU reports brand SIM_BRAND (an nvmlBrandType_t value). Each call of
 * nvmlInit or nvmlInit_v2 appends the caller's pid as a line to
 * SIM_NVML_INIT_LOG (when it can be opened: not inside a container), so a
 * test can count how often a process initialised NVML. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_nvml.h"

#ifndef SIM_PROC
#define SIM_PROC "/nonexistent/proc/driver/nvidia/gpus"
#endif
#ifndef SIM_DEV
#define SIM_DEV "/nonexistent/dev"
#endif
#ifndef SIM_CAPS
#define SIM_CAPS "/nonexistent/proc/driver/nvidia/capabilities"
#endif
#ifndef SIM_DRIVER_VERSION
#define SIM_DRIVER_VERSION "580.159.04"
#endif
#ifndef SIM_CUDA_VERSION
#define SIM_CUDA_VERSION 13000
#endif
#ifndef SIM_BRAND
#define SIM_BRAND NVML_BRAND_TESLA
#endif
#ifndef SIM_NVML_INIT_LOG
#define SIM_NVML_INIT_LOG "/nonexistent/nvml-inits.log"
#endif

#define REAL_PROC "/proc/driver/nvidia/gpus"
#define REAL_CAPS "/proc/driver/nvidia/capabilities"
#define MAX_GPUS 64
/* What the driver reports for an H100. */
#define MAX_MIG 7

struct nvmlDevice_st {
	char bus_id[256];
	char name[96];
	char uuid[96];
	unsigned int minor;
	/* Full GPUs: MIG mode and their MIG devices in migs[]. */
	int mig_enabled;
	unsigned int mig_first, mig_count;
	/* MIG devices: their parent, GPU and compute instance. */
	struct nvmlDevice_st *parent;
	unsigned int gi, ci;
};

static struct nvmlDevice_st devices[MAX_GPUS];
static unsigned int device_count;
static struct nvmlDevice_st migs[MAX_GPUS * MAX_MIG];
static unsigned int mig_total;
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

/* 0 when the capability node opens read-only (or would, but for the missing
 * kernel driver), else the errno that hides it. */
static int try_cap_node(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENXIO || errno == ENODEV)
		return 0;
	return errno;
}

static int cap_usable(unsigned int minor, int from_sim)
{
	char path[4096];
	int err;

	snprintf(path, sizeof path, "/dev/nvidia-caps/nvidia-cap%u", minor);
	err = try_cap_node(path);
	if (err == ENOENT && from_sim) {
		snprintf(path, sizeof path, "%s/nvidia-caps/nvidia-cap%u", SIM_DEV, minor);
		err = try_cap_node(path);
	}
	return err == 0;
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

/* The DeviceFileMinor of a capability file, or -1. */
static long read_cap_minor(const char *path)
{
	char line[256];
	long minor = -1;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "DeviceFileMinor:", 16) == 0) {
			minor = strtol(line + 16, NULL, 10);
			break;
		}
	}
	fclose(f);
	return minor;
}

/* The number after `prefix` in a directory entry name (gi3 -> 3), or -1. */
static long numbered(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	long v;

	if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9')
		return -1;
	v = strtol(name + n, &end, 10);
	return *end == '\0' ? v : -1;
}

static int by_number(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The sorted ids of the `prefix<N>` subdirectories of dir; returns how many. */
static int list_ids(const char *dir, const char *prefix, long *ids, int max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		long id = numbered(e->d_name, prefix);

		if (id >= 0)
			ids[n++] = id;
	}
	closedir(d);
	qsort(ids, (size_t)n, sizeof *ids, by_number);
	return n;
}

static void scan_mig(struct nvmlDevice_st *gpu, const char *caps_root, int from_sim)
{
	char mig_dir[4096];
	long gis[64], cis[64];
	int ngi, nci, i, j;
	struct stat st;

	gpu->mig_first = mig_total;
	gpu->mig_count = 0;
	snprintf(mig_dir, sizeof mig_dir, "%s/gpu%u/mig", caps_root, gpu->minor);
	gpu->mig_enabled = stat(mig_dir, &st) == 0 && S_ISDIR(st.st_mode);
	if (!gpu->mig_enabled)
		return;
	ngi = list_ids(mig_dir, "gi", gis, 64);
	for (i = 0; i < ngi; i++) {
		char gi_dir[4200], path[4400];
		long gi_minor;

		snprintf(gi_dir, sizeof gi_dir, "%s/gi%ld", mig_dir, gis[i]);
		snprintf(path, sizeof path, "%s/access", gi_dir);
		gi_minor = read_cap_minor(path);
		nci = list_ids(gi_dir, "ci", cis, 64);
		for (j = 0; j < nci; j++) {
			struct nvmlDevice_st *mig;
			long ci_minor;

			snprintf(path, sizeof path, "%s/ci%ld/access", gi_dir, cis[j]);
			ci_minor = read_cap_minor(path);
			if (gi_minor < 0 || ci_minor < 0 || gpu->mig_count >= MAX_MIG
			    || !cap_usable((unsigned int)gi_minor, from_sim)
			    || !cap_usable((unsigned int)ci_minor, from_sim))
				continue;
			mig = &migs[mig_total++];
			memset(mig, 0, sizeof *mig);
			mig->parent = gpu;
			mig->minor = gpu->minor;
			mig->gi = (unsigned int)gis[i];
			mig->ci = (unsigned int)cis[j];
			snprintf(mig->bus_id, sizeof mig->bus_id, "%s", gpu->bus_id);
			snprintf(mig->name, sizeof mig->name, "%.80s MIG 3g.40gb", gpu->name);
			snprintf(mig->uuid, sizeof mig->uuid, "MIG-5e1f0000-0000-4000-9000-%04x%04x%04x",
				 gpu->minor & 0xffff, mig->gi & 0xffff, mig->ci & 0xffff);
			gpu->mig_count++;
		}
	}
}

static void scan(void)
{
	struct dirent **names = NULL;
	const char *root = REAL_PROC;
	int from_sim = 0;
	int n, i;

	device_count = 0;
	mig_total = 0;
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
		    && node_usable(dev.minor, from_sim)) {
			devices[device_count] = dev;
			scan_mig(&devices[device_count], from_sim ? SIM_CAPS : REAL_CAPS, from_sim);
			device_count++;
		}
		free(names[i]);
	}
	free(names);
}

static void log_init(void)
{
	FILE *f = fopen(SIM_NVML_INIT_LOG, "a");

	if (f == NULL)
		return;
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

/* The real NVML starts threads of its own at init and leaves them running; so does this one,
 * so a caller that must stay single-threaded (setns into a mount namespace) is tested as
 * it lives with the real library. */
static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int init(void)
{
	static int threads_started;
	log_init();
	if (init_count++ == 0)
		scan();
	if (!threads_started) {
		/* The thread outlives nvmlShutdown, as the real library's do; pinning the library
		 * (RTLD_NODELETE) keeps its code mapped when the caller unloads it. */
		Dl_info self;
		pthread_t thread;
		if (dladdr((void *)init, &self) && self.dli_fname)
			dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
		if (pthread_create(&thread, NULL, idle_thread, NULL) == 0)
			pthread_detach(thread);
		threads_started = 1;
	}
	return NVML_SUCCESS;
}

int nvmlInit_v2(void)
{
	return init();
}

int nvmlInit(void)
{
	return init();
}

int nvmlShutdown(void)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (--init_count == 0) {
		device_count = 0;
	}
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

static int is_gpu(nvmlDevice_t device)
{
	return device != NULL && device >= devices && device < devices + device_count;
}

static int is_mig(nvmlDevice_t device)
{
	return device != NULL && device >= migs && device < migs + mig_total;
}

/* A full GPU or MIG device handle of this initialisation. */
static int check_device(nvmlDevice_t device)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (!is_gpu(device) && !is_mig(device))
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_SUCCESS;
}

static int check_gpu(nvmlDevice_t device)
{
	int rc = check_device(device);

	return rc == NVML_SUCCESS && !is_gpu(device) ? NVML_ERROR_INVALID_ARGUMENT : rc;
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
	*type = SIM_BRAND;
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

int nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)
{
	int rc = check_gpu(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (currentMode == NULL || pendingMode == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*currentMode = *pendingMode = device->mig_enabled ? NVML_DEVICE_MIG_ENABLE : 0;
	return NVML_SUCCESS;
}

int nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
	int rc = check_gpu(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (count == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*count = MAX_MIG;
	return NVML_SUCCESS;
}

int nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice)
{
	int rc = check_gpu(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (migDevice == NULL || index >= MAX_MIG)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!device->mig_enabled || index >= device->mig_count)
		return NVML_ERROR_NOT_FOUND;
	*migDevice = &migs[device->mig_first + index];
	return NVML_SUCCESS;
}

int nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice)
{
	int rc = check_device(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (isMigDevice == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*isMigDevice = (unsigned int)is_mig(device);
	return NVML_SUCCESS;
}

int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t migDevice, nvmlDevice_t *device)
{
	int rc = check_device(migDevice);

	if (rc != NVML_SUCCESS)
		return rc;
	if (device == NULL || !is_mig(migDevice))
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = migDevice->parent;
	return NVML_SUCCESS;
}

static int instance_id(nvmlDevice_t device, unsigned int *id, int compute)
{
	int rc = check_device(device);

	if (rc != NVML_SUCCESS)
		return rc;
	if (id == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!is_mig(device))
		return NVML_ERROR_NOT_SUPPORTED;
	*id = compute ? device->ci : device->gi;
	return NVML_SUCCESS;
}

int nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)
{
	return instance_id(device, id, 0);
}

int nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
	return instance_id(device, id, 1);
}
