/* Simulated nvidia-smi: linked against the simulated libnvidia-ml.so.1, so it
 * only runs where the dynamic loader can find that library (ld cache,
 * LD_LIBRARY_PATH). Supports `nvidia-smi` and `nvidia-smi -L`; -L lists the
 * MIG devices of a GPU in MIG mode under it, as the real one does. */
#include <stdio.h>
#include <string.h>

#include "sim_nvml.h"

#define RULE "+--------------------------------------------------------------------------------------+"

static int failed(const char *what, int rc)
{
	fprintf(stderr, "%s failed: %s\n", what, nvmlErrorString(rc));
	nvmlShutdown();
	return 255;
}

/* `  MIG 3g.40gb     Device  0: (UUID: MIG-...)` per MIG device of dev. */
static int list_mig(nvmlDevice_t dev)
{
	unsigned int current = 0, pending = 0, max = 0, i;
	int rc = nvmlDeviceGetMigMode(dev, &current, &pending);

	if (rc != NVML_SUCCESS || current != NVML_DEVICE_MIG_ENABLE)
		return NVML_SUCCESS;
	rc = nvmlDeviceGetMaxMigDeviceCount(dev, &max);
	if (rc != NVML_SUCCESS)
		return rc;
	for (i = 0; i < max; i++) {
		nvmlDevice_t mig;
		char uuid[96];

		rc = nvmlDeviceGetMigDeviceHandleByIndex(dev, i, &mig);
		if (rc == NVML_ERROR_NOT_FOUND)
			continue;
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetUUID(mig, uuid, sizeof uuid);
		if (rc != NVML_SUCCESS)
			return rc;
		printf("  MIG 3g.40gb     Device %2u: (UUID: %s)\n", i, uuid);
	}
	return NVML_SUCCESS;
}

int main(int argc, char **argv)
{
	char driver[80], name[96], uuid[96];
	unsigned int count = 0, i;
	int cuda = 0;
	int list = argc > 1 && strcmp(argv[1], "-L") == 0;
	int rc;

	if (argc > 1 && !list) {
		fprintf(stderr, "simulated nvidia-smi: only no arguments or -L are supported\n");
		return 2;
	}
	rc = nvmlInit_v2();
	if (rc != NVML_SUCCESS) {
		printf("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
		       "Make sure that the latest NVIDIA driver is installed and running.\n");
		return 9;
	}
	rc = nvmlDeviceGetCount_v2(&count);
	if (rc != NVML_SUCCESS)
		return failed("nvmlDeviceGetCount_v2", rc);
	if (count == 0) {
		printf("No devices were found\n");
		nvmlShutdown();
		return 6;
	}
	if (!list) {
		rc = nvmlSystemGetDriverVersion(driver, sizeof driver);
		if (rc != NVML_SUCCESS)
			return failed("nvmlSystemGetDriverVersion", rc);
		nvmlSystemGetCudaDriverVersion_v2(&cuda);
		printf("%s\n", RULE);
		printf("| NVIDIA-SMI %-12s    Driver Version: %-12s    CUDA Version: %2d.%-8d |\n",
		       driver, driver, cuda / 1000, (cuda % 1000) / 10);
		printf("|%.86s|\n", RULE + 1);
		printf("| GPU  Name                            Minor  UUID                                     |\n");
		printf("|%s|\n", "======================================================================================");
	}
	for (i = 0; i < count; i++) {
		nvmlDevice_t dev;
		unsigned int minor = 0;

		rc = nvmlDeviceGetHandleByIndex_v2(i, &dev);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetName(dev, name, sizeof name);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetUUID(dev, uuid, sizeof uuid);
		if (rc == NVML_SUCCESS)
			rc = nvmlDeviceGetMinorNumber(dev, &minor);
		if (rc != NVML_SUCCESS)
			return failed("querying a GPU", rc);
		if (list) {
			printf("GPU %u: %s (UUID: %s)\n", i, name, uuid);
			rc = list_mig(dev);
			if (rc != NVML_SUCCESS)
				return failed("listing MIG devices", rc);
		} else
			printf("| %3u  %-31s %5u  %-40s |\n", i, name, minor, uuid);
	}
	if (!list)
		printf("%s\n", RULE);
	nvmlShutdown();
	return 0;
}
